"""Benchmark: decompositional interdependence (DI) of all word pairs of real sentences.

Compares ``jaxdyn.analysis.interdependence.interdependence_batch`` (one compiled
call for a padded batch of sentences and all their pairs) with

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

Usage: ``python benchmarks/interdependence.py [--quick] [--data-dir DIR]``
"""

from __future__ import annotations

import argparse
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

from jaxdyn.analysis.interdependence import all_pairs, interdependence_batch  # noqa: E402
from jaxdyn.data.conllu import read_conllu  # noqa: E402
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


def time_jax(params, toks, pairs, lengths, reps, **kw):
    target = lengths - 1
    t0 = time.perf_counter()
    di = interdependence_batch(
        params, toks, pairs, target, lengths=lengths, **kw
    ).block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        interdependence_batch(
            params, toks, pairs, target, lengths=lengths, **kw
        ).block_until_ready()
        times.append(time.perf_counter() - t0)
    return np.asarray(di), compile_s, statistics.median(times)


def time_reference(np_params, sents, pair_lists):
    t0 = time.perf_counter()
    vals = [
        np.array([di_ref(np_params, s, x, y, len(s) - 1) for x, y in pl])
        for s, pl in zip(sents, pair_lists)
    ]
    return vals, time.perf_counter() - t0


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
    t0 = time.perf_counter()
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
    return vals, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--ref-sentences", type=int, default=4)
    ap.add_argument("--max-distance", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--quick", action="store_true", help="8 sentences, 2 reference sentences, 3 reps"
    )
    args = ap.parse_args()
    if args.quick:
        args.sentences, args.ref_sentences, args.reps = 8, 2, 3

    sents = load_sentences(args.data_dir, args.sentences)
    toks, pairs, lengths, pair_lists = batch_inputs(sents, args.max_distance)
    n_pairs = sum(len(pl) for pl in pair_lists)
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {len(sents)} EWT dev sentences, "
          f"T_max {toks.shape[1]}, {n_pairs} pairs (distance <= {args.max_distance})")  # fmt: skip

    # 1. two-layer model vs the per-span NumPy loop
    params = random_params(jax.random.PRNGKey(0), 2)
    di, comp, med = time_jax(params, toks, pairs, lengths, args.reps)
    r = args.ref_sentences
    ref_vals, ref_s = time_reference(numpy_params(params, np.float32), sents[:r], pair_lists[:r])
    ref_pairs = sum(len(pl) for pl in pair_lists[:r])
    err = max(np.abs(di[b, : len(v)] - v).max() for b, v in enumerate(ref_vals))
    ref_full = ref_s / ref_pairs * n_pairs
    print("\n2-layer LSTM 200/200, V=10k, hidden-space DI at the last word")
    print(f"  jaxdyn interdependence_batch: compile {comp:.2f} s, median {med * 1e3:.1f} ms "
          f"({med / n_pairs * 1e6:.1f} us/pair)")  # fmt: skip
    print(f"  per-span NumPy loop: {ref_s:.2f} s for {ref_pairs} pairs ({ref_s / ref_pairs * 1e3:.2f} ms/pair)"
          f" -> {ref_full:.1f} s for all {n_pairs} pairs")  # fmt: skip
    print(f"  speed-up {ref_full / med:.0f}x; max |DI_jax - DI_ref| = {err:.2e}")

    # 2. one-layer model vs the acd package (adjacent pairs)
    params1 = random_params(jax.random.PRNGKey(1), 1)
    adj_lists = [all_pairs(len(s), 1) for s in sents]
    _, pairs1, _, _ = batch_inputs(sents, 1)
    n_adj = sum(len(pl) for pl in adj_lists)
    di1, comp1, med1 = time_jax(params1, toks, pairs1, lengths, args.reps)
    try:
        acd_vals, acd_s = time_acd(params1, sents[:r])
    except ImportError as e:
        print(f"\nacd not importable ({e}); skipped")
        return
    acd_pairs = sum(len(v) for v in acd_vals)
    err1 = max(np.abs(di1[b, : len(v)] - v).max() for b, v in enumerate(acd_vals))
    acd_full = acd_s / acd_pairs * n_adj
    print(
        f"\n1-layer LSTM 200/200, V=10k, adjacent pairs ({n_adj}), hidden-space DI at the last word"
    )
    print(f"  jaxdyn interdependence_batch: compile {comp1:.2f} s, median {med1 * 1e3:.1f} ms")
    print(f"  acd.cd_text (3 calls per pair): {acd_s:.2f} s for {acd_pairs} pairs "
          f"({acd_s / acd_pairs * 1e3:.2f} ms/pair) -> {acd_full:.1f} s for all")  # fmt: skip
    print(f"  speed-up {acd_full / med1:.0f}x; max |DI_jax - DI_acd| = {err1:.2e}")


if __name__ == "__main__":
    main()
