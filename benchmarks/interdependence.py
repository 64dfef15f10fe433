"""Benchmark: decompositional interdependence (DI) of all word pairs of real sentences.

Compares ``jaxdyn.decompose.interdependence_batch`` (one compiled call for a padded
batch of sentences and all their pairs; ``schedule="packed"``, the default, of
:mod:`jaxdyn.decompose.lstm.di_packed`: each distinct span runs only from its first
word to its target, spans packed into lanes) with

0. the same function with ``schedule="dense"`` under ``jax.jit`` with traced pairs,
   i.e. the fixed-shape path that scans every span over all ``T`` steps (the
   previous algorithm);

1. the reference implementations' way: one CD call per span (``{x}``, ``{y}``,
   ``{x, y}`` for every pair), a Python loop over time with one matrix-vector
   product per gate (NumPy float32, ``tests/reference/cd_ref.py``), on a
   2-layer 200-unit LSTM with a 10k vocabulary and uniform(-0.1, 0.1) weights;
2. the ``acd`` package from PyPI (``acd.cd_text``, Murdoch et al.'s CD, one
   layer, contiguous spans only, so only adjacent pairs ``(x, x + 1)``), on a
   1-layer model of the same size.

Sentences: the first ``--sentences`` sentences of UD EWT dev with 5 to 40 words.
Pairs: all ``x < y`` with ``y - x <= --max-distance``; DI of the top layer's
hidden state at the sentence's last word. Values are checked to agree. The
references are slow, so they run on the first ``--ref-sentences`` sentences
and their time is scaled to all pairs by their per-pair rate (stated in the output).
Times are wall clock and CPU time (``time.process_time``, all threads); the JAX
repetitions are split before and after the reference runs (medians reported), as the
machine may be shared.

``--studies smoke,default`` instead times the DI computations of the interactions
and bottom-up studies at those presets' sizes (EWT dev sentences, synthetic bracket
data, random weights): the studies' code before the refactor
(``tests/reference/study_di_old.py``: fixed-shape ``span_beta``, own ratio, second
forward pass) against the current ``batch_di`` / ``closing_measures`` (the DI kernel),
alternating, with the packed schedules built in every call ("cold", a study's first
checkpoint) and memoised ("warm", every later checkpoint).

Usage: ``python benchmarks/interdependence.py [--quick] [--data-dir DIR] [--studies P,..]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxdyn.data.conllu import read_conllu  # noqa: E402
from jaxdyn.decompose import all_pairs, interdependence_batch  # noqa: E402
from jaxdyn.decompose.lstm.di_packed import clear_schedule_cache  # noqa: E402
from tests.reference.cd_ref import di_ref, numpy_params  # noqa: E402

VOCAB, HID = 10_000, 200


def random_params(key, layers):
    """Uniform(-0.1, 0.1) parameters in the jaxdyn layout."""
    keys = iter(jax.random.split(key, 4 * layers + 3))

    def u(shape):
        return jax.random.uniform(next(keys), shape, jnp.float32, -0.1, 0.1)

    rnn = {
        f"l{l}": {
            "weight_ih": u((4 * HID, HID)),
            "weight_hh": u((4 * HID, HID)),
            "bias_ih": u((4 * HID,)),
            "bias_hh": u((4 * HID,)),
        }
        for l in range(layers)
    }
    return {
        "encoder": {"weight": u((VOCAB, HID))},
        "rnn": rnn,
        "decoder": {"weight": u((VOCAB, HID)), "bias": u((VOCAB,))},
    }


def load_sentences(data_dir: Path, n: int) -> list[np.ndarray]:
    sents = read_conllu(data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu")
    counts: dict[str, int] = {}
    for s in sents:
        for w in s.words:
            counts[w.lower()] = counts.get(w.lower(), 0) + 1
    ids = {w: i for i, w in enumerate(sorted(counts, key=lambda w: -counts[w])[: VOCAB - 1])}
    out = []
    for s in sents:
        if 5 <= len(s.words) <= 40:
            out.append(np.array([ids.get(w.lower(), VOCAB - 1) for w in s.words], np.int32))
        if len(out) == n:
            break
    return out


def batch_inputs(sents, max_distance):
    t = max(len(s) for s in sents)
    pair_lists = [all_pairs(len(s), max_distance) for s in sents]
    p = max(len(x) for x in pair_lists)
    toks = np.zeros((len(sents), t), np.int32)
    pairs = np.full((len(sents), p, 2), -1, np.int32)
    for b, (s, pl) in enumerate(zip(sents, pair_lists)):
        toks[b, : len(s)] = s
        pairs[b, : len(pl)] = pl
    lengths = np.array([len(s) for s in sents], np.int32)
    return toks, pairs, lengths, pair_lists


def _clock(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def jax_runner(params, toks, pairs, lengths, traced=False, **kw):
    """Returns ``(call, di, first_call_s)``; ``traced`` runs the fixed-shape path
    (``schedule="dense"``, pairs traced under ``jax.jit``)."""
    target = lengths - 1

    def packed():  # the host schedule is built in every call, as on first use
        clear_schedule_cache()
        return interdependence_batch(params, toks, pairs, target, lengths=lengths, **kw)

    fixed = jax.jit(
        lambda p, tk, pr, tg, ln: interdependence_batch(
            p, tk, pr, tg, lengths=ln, schedule="dense", **kw
        )
    )

    def call():
        out = fixed(params, toks, pairs, target, lengths) if traced else packed()
        return np.asarray(out.block_until_ready())

    di, wall, _ = _clock(call)
    return call, di, wall


def reps(call, n):
    return [_clock(call)[1:] for _ in range(n)]


def med(times):
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def time_reference(np_params, sents, pair_lists):
    def run():
        return [
            np.array([di_ref(np_params, s, x, y, len(s) - 1) for x, y in pl])
            for s, pl in zip(sents, pair_lists)
        ]

    return _clock(run)


def time_acd(params1, sents):
    """DI of adjacent pairs with acd.cd_text (beta_h at the last word via an identity head)."""
    from types import SimpleNamespace

    import torch
    from acd.scores.cd import cd_text

    p = params1["rnn"]["l0"]
    emb = torch.nn.Embedding(VOCAB, HID)
    lstm = torch.nn.LSTM(HID, HID, 1)
    head = torch.nn.Linear(HID, HID)
    with torch.no_grad():
        emb.weight.copy_(torch.as_tensor(np.asarray(params1["encoder"]["weight"])))
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{k}_l0").copy_(torch.as_tensor(np.asarray(p[k])))
        head.weight.copy_(torch.eye(HID))
        head.bias.zero_()
    model = SimpleNamespace(embed=emb, lstm=lstm, hidden_to_label=head, hidden_dim=HID)
    vals = []
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # acd passes torch tensors to NumPy
        for s in sents:
            batch = SimpleNamespace(text=torch.as_tensor(s, dtype=torch.long)[:, None])
            row = []
            for x in range(len(s) - 1):
                bx = cd_text(batch, model, x, x)
                by = cd_text(batch, model, x + 1, x + 1)
                bxy = cd_text(batch, model, x, x + 1)
                den = np.linalg.norm(bxy)
                row.append(0.0 if den == 0 else np.linalg.norm(bxy - bx - by) / den)
            vals.append(np.array(row))
    return vals, time.perf_counter() - t0, time.process_time() - c0


def _med_clock(fn, reps):
    times = [_clock(fn)[1:] for _ in range(reps)]
    return med(times)


def time_studies(names, data_dir: Path, reps: int) -> None:
    """Old vs new DI of the interactions and bottom-up studies at preset sizes."""
    from jaxdyn.config import preset
    from jaxdyn.data.synthetic import generate_brackets
    from jaxdyn.decompose.lstm.di_packed import clear_schedule_cache
    from jaxdyn.models.lstm import language_model
    from jaxdyn.studies.bottom_up.compute import closing_measures
    from jaxdyn.studies.interactions.pairs import batch_di, make_batches, sentence_pairs
    from tests.reference.study_di_old import old_batch_di, old_closing_measures

    def lm(vocab, m, seed):
        model = language_model(vocab, emb_dim=m.emb_dim, hidden=m.hidden, num_layers=m.num_layers)
        p = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]
        return jax.tree_util.tree_map(lambda a: a * 3.0, p)

    def compare(label, old, new, diff):
        print(f"  {label}: max |old - new| " + ", ".join(f"{k} {v:.1e}" for k, v in diff().items()))
        for cold in (True, False):

            def fresh(cold=cold):
                if cold:
                    clear_schedule_cache()
                return new()

            (ow, oc), (nw, nc) = _med_clock(old, reps), _med_clock(fresh, reps)
            print(f"    {'cold' if cold else 'warm'}: old {ow:.3f} s wall / {oc:.3f} s CPU, "
                  f"new {nw:.3f} s / {nc:.3f} s; old/new {ow / nw:.2f}x wall, {oc / nc:.2f}x CPU")  # fmt: skip

    def max_diff(a, b):
        return {k: float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in a}

    for name in names:
        cfg = preset(name)
        ic, bc = cfg.interactions, cfg.bottom_up
        print(f"\n[{name}] load average {os.getloadavg()}; medians of {reps}, alternating")
        vocab = ic.data.max_vocab or VOCAB
        sents = [s for s in read_conllu(data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu")
                 if ic.min_words <= len(s.words) <= ic.max_words][: ic.max_sentences]  # fmt: skip
        rng = np.random.default_rng(0)
        ids = [rng.integers(1, vocab, len(s.words)).astype(np.int32) for s in sents]
        psets = [sentence_pairs(s.heads, ic.max_seq_dist) for s in sents]
        batches = make_batches(
            ids, psets, eos_id=0, max_seq_dist=ic.max_seq_dist, bucket_width=ic.bucket_width,
            hidden=ic.model.hidden, batch_elems=ic.batch_elems,
        )  # fmt: skip
        params = lm(vocab, ic.model, 0)
        n_pairs = sum(len(p["i"]) for p in psets)

        def i_old(params=params, batches=batches):
            return [old_batch_di(params, b) for b in batches]

        def i_new(params=params, batches=batches):
            return [batch_di(params, b) for b in batches]

        def i_diff():
            o, n = i_old(), i_new()
            return {
                sp: max(float(np.abs(a[k] - b[k]).max()) for a, b in zip(o, n))
                for k, sp in enumerate(("di_hidden", "di_logits"))
            }

        print(f"interactions: {len(sents)} sentences, {n_pairs} pairs, {len(batches)} batches, "
              f"H {ic.model.hidden}, V {vocab}; one checkpoint")  # fmt: skip
        compare("batch_di over all batches", i_old, i_new, i_diff)
        for rule_length in bc.rule_lengths:
            data = generate_brackets(bc.bracket_config(rule_length, bc.familiar_repeats))
            p = lm(bc.vocab_size + 2, bc.model, 1)
            sets = (data.eval_familiar, data.eval_fresh)
            op, ch = data.eval_open, bc.eval_chunk

            def b_old(p=p, sets=sets, op=op, ch=ch, rl=rule_length):
                return [old_closing_measures(p, s, op, rl, chunk=ch) for s in sets]

            def b_new(p=p, sets=sets, op=op, ch=ch, rl=rule_length):
                return [closing_measures(p, s, op, rl, chunk=ch) for s in sets]

            def b_diff(b_old=b_old, b_new=b_new):
                o, n = b_old(), b_new()
                return {k: max(max_diff(a, b)[k] for a, b in zip(o, n)) for k in o[0]}

            print(f"bottom-up L={rule_length}: {len(op)} sequences x 2 sets, length "
                  f"{data.eval_familiar.shape[1]}, H {bc.model.hidden}; one checkpoint")  # fmt: skip
            compare("closing_measures", b_old, b_new, b_diff)
    print(f"\nload average at the end {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--ref-sentences", type=int, default=4)
    ap.add_argument("--max-distance", type=int, default=5)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--fixed-reps", type=int, default=2, help="reps of the fixed-shape path")
    ap.add_argument(
        "--quick", action="store_true", help="8 sentences, 2 reference sentences, 3 reps"
    )
    ap.add_argument("--studies", default=None, help="presets, e.g. smoke,default: study DI only")
    args = ap.parse_args()
    if args.studies:
        time_studies(args.studies.split(","), args.data_dir, max(3, args.reps // 2))
        return
    if args.quick:
        args.sentences, args.ref_sentences, args.reps, args.fixed_reps = 8, 2, 3, 1

    sents = load_sentences(args.data_dir, args.sentences)
    toks, pairs, lengths, pair_lists = batch_inputs(sents, args.max_distance)
    n_pairs = sum(len(pl) for pl in pair_lists)
    import torch

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), platform.processor(),
    )  # fmt: skip
    print(f"machine: {os.cpu_count()} CPUs ({cpu}); load average {os.getloadavg()}")
    print(f"jax {jax.__version__} ({jax.default_backend()}), numpy {np.__version__}, "
          f"torch {torch.__version__}, acd {_version('acd')}")  # fmt: skip
    print(f"{len(sents)} EWT dev sentences, T_max {toks.shape[1]}, {n_pairs} pairs "
          f"(distance <= {args.max_distance}), hidden-space DI at the last word")  # fmt: skip
    r = args.ref_sentences
    half = max(1, args.reps // 2)

    # 1. two-layer model: packed, fixed-shape path, per-span NumPy loop
    params = random_params(jax.random.PRNGKey(0), 2)
    call, di, comp = jax_runner(params, toks, pairs, lengths)
    t_jax = reps(call, half)
    fcall, fdi, fcomp = jax_runner(params, toks, pairs, lengths, traced=True)
    t_fix = reps(fcall, args.fixed_reps)
    ref_vals, ref_w, ref_c = time_reference(
        numpy_params(params, np.float32), sents[:r], pair_lists[:r]
    )
    t_jax += reps(call, args.reps - half)
    ref_pairs = sum(len(pl) for pl in pair_lists[:r])
    err = max(np.abs(di[b, : len(v)] - v).max() for b, v in enumerate(ref_vals))
    err_fix = float(np.abs(di - fdi).max())
    scale = n_pairs / ref_pairs
    (jw, jc), (fw, fc) = med(t_jax), med(t_fix)
    print("\n2-layer LSTM 200/200, V=10k | wall | CPU | speed-up wall / CPU")
    print(f"  packed interdependence_batch (compile {comp:.1f} s, median of {len(t_jax)}): "
          f"{jw:.3f} s | {jc:.3f} s | {fw / jw:.1f}x / {fc / jc:.1f}x vs fixed-shape")  # fmt: skip
    print(f"  fixed-shape path (compile {fcomp:.1f} s, median of {len(t_fix)}): "
          f"{fw:.3f} s | {fc:.3f} s | max |DI_packed - DI_fixed| = {err_fix:.2e}")  # fmt: skip
    print(f"  per-span NumPy loop: {ref_w:.2f} s wall, {ref_c:.2f} s CPU for {ref_pairs} pairs "
          f"({ref_w / ref_pairs * 1e3:.2f} ms/pair) -> {ref_w * scale:.1f} s for all")  # fmt: skip
    print(f"  speed-up of packed vs loop: {ref_w * scale / jw:.0f}x wall, "
          f"{ref_c * scale / jc:.0f}x CPU; fixed-shape vs loop: {ref_w * scale / fw:.0f}x wall; "
          f"max |DI_packed - DI_ref| = {err:.2e}")  # fmt: skip

    # 2. one-layer model vs the acd package (adjacent pairs)
    params1 = random_params(jax.random.PRNGKey(1), 1)
    adj_lists = [all_pairs(len(s), 1) for s in sents]
    _, pairs1, _, _ = batch_inputs(sents, 1)
    n_adj = sum(len(pl) for pl in adj_lists)
    call1, di1, comp1 = jax_runner(params1, toks, pairs1, lengths)
    t1 = reps(call1, half)
    fcall1, fdi1, fcomp1 = jax_runner(params1, toks, pairs1, lengths, traced=True)
    t1f = reps(fcall1, args.fixed_reps)
    try:
        acd_vals, acd_w, acd_c = time_acd(params1, sents[:r])
    except ImportError as e:
        print(f"\nacd not importable ({e}); skipped")
        return
    t1 += reps(call1, args.reps - half)
    acd_pairs = sum(len(v) for v in acd_vals)
    err1 = max(np.abs(di1[b, : len(v)] - v).max() for b, v in enumerate(acd_vals))
    scale1 = n_adj / acd_pairs
    (jw1, jc1), (fw1, fc1) = med(t1), med(t1f)
    print(f"\n1-layer LSTM 200/200, V=10k, adjacent pairs ({n_adj}) | wall | CPU")
    print(f"  packed interdependence_batch (compile {comp1:.1f} s, median of {len(t1)}): "
          f"{jw1:.3f} s | {jc1:.3f} s | {fw1 / jw1:.1f}x / {fc1 / jc1:.1f}x vs fixed-shape")  # fmt: skip
    print(f"  fixed-shape path (compile {fcomp1:.1f} s, median of {len(t1f)}): {fw1:.3f} s | "
          f"{fc1:.3f} s | max |DI_packed - DI_fixed| = {float(np.abs(di1 - fdi1).max()):.2e}")  # fmt: skip
    print(f"  acd.cd_text (3 calls per pair): {acd_w:.2f} s wall, {acd_c:.2f} s CPU for "
          f"{acd_pairs} pairs ({acd_w / acd_pairs * 1e3:.2f} ms/pair) -> {acd_w * scale1:.1f} s for all")  # fmt: skip
    print(f"  speed-up of packed vs acd: {acd_w * scale1 / jw1:.0f}x wall, "
          f"{acd_c * scale1 / jc1:.0f}x CPU; max |DI_packed - DI_acd| = {err1:.2e}")  # fmt: skip
    print(f"\nload average at the end {os.getloadavg()}")


def _version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
