"""Benchmark: per-word-type TE aggregation of one evaluation pass of the thesis LM.

Contenders, timed on the SAME activation / output-gradient tensors (produced once
per chunk with PyTorch forward hooks + tensor gradient hooks on an equivalent torch
Embedding / 2 x LSTM / Linear model):

  (a) jaxdyn: per-token TE on device (``token_statistics``) + ``aggregate_update``
      for every module, direction and both keyings (input / target word), one
      jitted step per chunk, ``aggregate_finalize`` at the end of the pass;
  (b) thesis way: a Python loop over tokens computing each token's TE with numpy
      and appending it to ``defaultdict(list)`` keyed by word, means at the end.

Repeats alternate the contenders' order; medians over repeats; compile time is
reported separately. Per-type means are checked to agree.

Usage:
    python benchmarks/sparsity.py            # 50 chunks x 20 x 35 = 35,000 tokens
    python benchmarks/sparsity.py --quick    # 8 chunks
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
from collections import defaultdict
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

from jaxdyn.analysis.per_type import aggregate_finalize, aggregate_init, aggregate_update
from jaxdyn.analysis.sparsity import token_statistics

MODULES = ("embedding", "lstm_0", "lstm_1", "decoder")
HIDDEN = ("embedding", "lstm_0", "lstm_1")
DIRECTIONS = ("act", "act_grad")


class TorchLM(nn.Module):
    """Thesis-shaped word LM: embedding -> LSTM -> LSTM -> linear decoder."""

    def __init__(self, vocab: int, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.lstm_0 = nn.LSTM(hidden, hidden)
        self.lstm_1 = nn.LSTM(hidden, hidden)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        e = self.embedding(x)
        h0, s0 = self.lstm_0(e, state[0])
        h1, s1 = self.lstm_1(h0, state[1])
        return self.decoder(h1), (s0, s1)


def attach_hooks(model: TorchLM, store: dict) -> list:
    """Forward hooks saving each module's output and, via a tensor hook, its gradient."""

    def make(name):
        def hook(_mod, _inp, out):
            out = out[0] if isinstance(out, tuple) else out
            store[(name, "act")] = out.detach()

            def grad_hook(g):
                store[(name, "act_grad")] = g.detach()

            out.register_hook(grad_hook)

        return hook

    return [getattr(model, m).register_forward_hook(make(m)) for m in MODULES]


def make_data(n_chunks, batch, bptt, vocab, seed=0):
    rng = np.random.default_rng(seed)
    stream = (rng.zipf(1.3, batch * (n_chunks * bptt + 1)) - 1) % vocab  # Zipfian words
    data = stream.reshape(batch, -1).T.astype(np.int64)  # (steps, B), thesis batchify
    return [
        (data[i * bptt : (i + 1) * bptt], data[i * bptt + 1 : (i + 1) * bptt + 1])
        for i in range(n_chunks)
    ]


def produce(model, store, inputs, targets, state):
    """One hooked forward/backward; returns numpy (T, B, D) tensors and the new state."""
    model.zero_grad(set_to_none=True)
    logits, state = model(torch.from_numpy(inputs), state)
    loss = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).reshape(-1)
    )
    loss.backward()
    tensors = {k: v.numpy() for k, v in store.items()}
    state = tuple(tuple(s.detach() for s in layer) for layer in state)
    return tensors, state


# ---------------------------------------------------------------- contender (a)


@partial(jax.jit, donate_argnums=0)  # update the state in place
def jaxdyn_step(state, tensors, inputs, targets):
    stats = {
        m: {d: token_statistics(x, ("te",)) for d, x in dirs.items()} for m, dirs in tensors.items()
    }
    return aggregate_update(state, stats, inputs, targets)


def to_jax(tensors, inputs, targets):
    tree = {m: {d: jnp.asarray(tensors[(m, d)]) for d in DIRECTIONS} for m in MODULES}
    out = (tree, jnp.asarray(inputs, jnp.int32), jnp.asarray(targets, jnp.int32))
    return jax.block_until_ready(out)


def jaxdyn_init(vocab, modules=MODULES):
    leaf = jax.ShapeDtypeStruct((), jnp.float32)  # only the tree structure matters
    example = {m: {d: {"te": leaf} for d in DIRECTIONS} for m in modules}
    return aggregate_init(vocab, example)


# ---------------------------------------------------------------- contender (b)


def thesis_update(acc, tensors, inputs, targets):
    inp, tgt = inputs.tolist(), targets.tolist()
    T, B = inputs.shape
    for (m, d), arr in tensors.items():
        by_in, by_tgt = acc[(m, d, "input")], acc[(m, d, "target")]
        for t in range(T):
            for b in range(B):
                v = arr[t, b]
                l2 = np.linalg.norm(v)
                te = float(np.abs(v).sum() / l2) if l2 > 0 else 0.0
                by_in[inp[t][b]].append(te)
                by_tgt[tgt[t][b]].append(te)


def thesis_finalize(acc):
    return {k: {w: (len(v), float(np.mean(v))) for w, v in d.items()} for k, d in acc.items()}


def thesis_init():
    return defaultdict(lambda: defaultdict(list))


# ---------------------------------------------------------------- driver


def machine_info():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (
        f"nproc={nproc}, CPU: {cpu}, python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.devices()[0].platform}), torch {torch.__version__}, numpy {np.__version__}"
    )


def check_same(jax_res, thesis_res, vocab, modules):
    n_checked = 0
    for m in modules:
        for d in DIRECTIONS:
            for kg in ("input", "target"):
                r = jax.device_get(jax_res[kg][m][d]["te"])
                ref = thesis_res[(m, d, kg)]
                words = np.array(sorted(ref))
                cnt = np.zeros(vocab, np.int64)
                cnt[words] = [ref[w][0] for w in words]
                np.testing.assert_array_equal(r["count"], cnt)
                want = np.array([ref[w][1] for w in words])
                np.testing.assert_allclose(r["mean"][words], want, rtol=2e-5, atol=1e-6)
                n_checked += len(words)
    return n_checked


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=50)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--vocab", type=int, default=10_000)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="8 chunks (5,600 tokens)")
    p.add_argument(
        "--fused",
        action="store_true",
        help="also time the aggregation's marginal cost inside a whole evaluation pass",
    )
    a = p.parse_args()
    if a.quick:
        a.chunks = 8
    torch.manual_seed(0)
    torch.set_num_threads(1)  # both contenders are single-threaded; avoids oversubscription
    model = TorchLM(a.vocab, a.hidden).eval()
    store: dict = {}
    attach_hooks(model, store)
    chunks = make_data(a.chunks, a.batch, a.bptt, a.vocab)
    zeros = torch.zeros(1, a.batch, a.hidden)
    state = ((zeros, zeros), (zeros, zeros))
    R = a.repeats
    subsets = {"all": MODULES, "hidden": HIDDEN}
    jstates = {
        (sub, r): jaxdyn_init(a.vocab, mods) for sub, mods in subsets.items() for r in range(R)
    }
    taccs = {(sub, r): thesis_init() for sub in subsets for r in range(R)}
    times = {(who, sub): [0.0] * R for who in ("jax", "thesis") for sub in subsets}
    t_hooks, compile_s = 0.0, {}
    for c, (inp, tgt) in enumerate(chunks):
        t0 = time.perf_counter()
        tensors, state = produce(model, store, inp, tgt, state)
        t_hooks += time.perf_counter() - t0
        jt, ji, jtg = to_jax(tensors, inp, tgt)
        for sub, mods in subsets.items():
            jsub = {m: jt[m] for m in mods}
            tsub = {k: v for k, v in tensors.items() if k[0] in mods}
            if c == 0:  # compile (first call) minus steady state, on a throwaway state
                t0 = time.perf_counter()
                jax.block_until_ready(jaxdyn_step(jaxdyn_init(a.vocab, mods), jsub, ji, jtg))
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                jax.block_until_ready(jaxdyn_step(jaxdyn_init(a.vocab, mods), jsub, ji, jtg))
                compile_s[sub] = first - (time.perf_counter() - t0)
                jax.block_until_ready(aggregate_finalize(jstates[sub, 0]))  # compile finalize
            for r in range(R):
                order = ("jax", "thesis") if (c + r) % 2 == 0 else ("thesis", "jax")
                for who in order:
                    t0 = time.perf_counter()
                    if who == "jax":
                        jstates[sub, r] = jax.block_until_ready(
                            jaxdyn_step(jstates[sub, r], jsub, ji, jtg)
                        )
                    else:
                        thesis_update(taccs[sub, r], tsub, inp, tgt)
                    times[who, sub][r] += time.perf_counter() - t0
    results, n_checked = {}, 0
    for sub, mods in subsets.items():
        for r in range(R):
            t0 = time.perf_counter()
            jres = jax.block_until_ready(aggregate_finalize(jstates[sub, r]))
            times["jax", sub][r] += time.perf_counter() - t0
            t0 = time.perf_counter()
            tres = thesis_finalize(taccs[sub, r])
            times["thesis", sub][r] += time.perf_counter() - t0
            results[sub, r] = (jres, tres)
        n_checked += check_same(*results[sub, 0], a.vocab, mods)
    n_tok = a.chunks * a.batch * a.bptt
    print(f"\n{machine_info()}")
    print(
        f"model: vocab {a.vocab}, hidden {a.hidden}, 2-layer LSTM; {a.chunks} chunks x batch "
        f"{a.batch} x bptt {a.bptt} = {n_tok} tokens; modules x (act, act_grad) x "
        f"(input, target) keyings; repeats {R}; per-type means agree (rtol 2e-5), "
        f"{n_checked} (leaf, keying, word) entries checked\n"
    )
    print(
        "| modules | contender | compile (s) | steady pass, median (s) | min..max (s) "
        "| tokens/s | speedup |"
    )
    print("|---|---|---|---|---|---|---|")
    labels = {
        "all": "all 4 (emb, lstm_0, lstm_1, decoder logits 10k-d)",
        "hidden": "3 hidden-size (emb, lstm_0, lstm_1; 200-d)",
    }
    for sub in subsets:
        med = {who: statistics.median(times[who, sub]) for who in ("thesis", "jax")}
        for who, name, comp in (
            ("thesis", "thesis: per-token numpy TE -> defaultdict", "-"),
            ("jax", "jaxdyn: token_statistics + aggregate_update (jit)", f"{compile_s[sub]:.2f}"),
        ):
            ts = times[who, sub]
            print(
                f"| {labels[sub]} | {name} | {comp} | {med[who]:.3f} | {min(ts):.3f}..{max(ts):.3f}"
                f" | {n_tok / med[who]:,.0f} | {med['thesis'] / med[who]:.1f}x |"
            )
    med_t = statistics.median(times["thesis", "all"])
    med_j = statistics.median(times["jax", "all"])
    if a.fused:
        whole_pass(a, chunks, model, store, ((zeros, zeros), (zeros, zeros)))
    print(
        f"\nend-to-end, all modules, incl. torch hooked forward/backward ({t_hooks:.3f} s per "
        f"pass, measured once): thesis {t_hooks + med_t:.3f} s, torch hooks + jaxdyn "
        f"{t_hooks + med_j:.3f} s ({(t_hooks + med_t) / (t_hooks + med_j):.1f}x; torch->jax "
        "copy not counted)"
    )


def whole_pass(a, chunks, hooked_model, store, state0):
    """Per-chunk cost of the aggregation inside a whole evaluation pass, both ways.

    Four contenders, interleaved chunk by chunk (order alternating), each timed per
    chunk: jaxdyn's analysis step with on-device TE reductions + ``aggregate_update``
    (one jitted call), and the same forward pass and backward pass to every module
    output with nothing reduced or aggregated; torch forward/backward with hooks +
    the per-token loop, and the same torch forward/backward without hooks. The
    aggregation's marginal cost is the difference of per-chunk medians within each
    framework; the ratio of the marginal costs is the speed-up of the aggregation.
    """
    from jaxdyn.analysis.per_type import stats_from_trace
    from jaxdyn.models import language_model
    from jaxdyn.studies.sparsity import sparsity_spec
    from jaxdyn.train.step import make_analysis_step, masked_xent

    model = language_model(a.vocab, emb_dim=a.hidden, hidden=a.hidden, dropout=0.0)
    params = model.init(jax.random.key(0), jnp.zeros((a.batch, 1), jnp.int32))["params"]
    analyse = make_analysis_step(model, sparsity_spec(("te",)))
    batches = [
        {"inputs": jnp.asarray(i.T, jnp.int32), "targets": jnp.asarray(t.T, jnp.int32)}
        for i, t in chunks
    ]
    carry0 = tuple((jnp.zeros((a.batch, a.hidden)),) * 2 for _ in range(2))
    _, tr, _ = jax.eval_shape(analyse, params, carry0, batches[0])

    @partial(jax.jit, donate_argnums=0)
    def fused(acc, params, carry, batch):
        _, trace, carry = analyse(params, carry, batch)
        acc = aggregate_update(
            acc, stats_from_trace(trace), batch["inputs"], batch["targets"], trace["mask"]
        )
        return acc, carry

    @jax.jit
    def base(params, carry, batch):
        """Forward + backward to every module output (what the trace needs), no stats."""
        names = tr["reduced"]["act_grad"].keys()
        shapes = {"logits": a.vocab}
        pert = {
            n: jnp.zeros((*batch["inputs"].shape, shapes.get(n, a.hidden)), jnp.float32)
            for n in names
        }

        def loss_fn(pert):
            logits, new_carry = model.apply(
                {"params": params}, batch["inputs"], carry, perturbations=pert
            )
            mask = jnp.ones(batch["inputs"].shape, bool)
            return masked_xent(logits, batch["targets"], mask)[0], new_carry

        (loss, carry), g = jax.value_and_grad(loss_fn, has_aux=True)(pert)
        # one element of each module-output gradient: keeps the whole backward
        # pass alive without reading the gradients again
        return loss + sum(v[0, 0, 0] for v in jax.tree.leaves(g)), carry

    plain_torch = TorchLM(a.vocab, a.hidden).eval()
    plain_torch.load_state_dict(hooked_model.state_dict())

    def torch_plain(st, inp, tgt):
        plain_torch.zero_grad(set_to_none=True)
        logits, st = plain_torch(torch.from_numpy(inp), st)
        nn.functional.cross_entropy(
            logits.reshape(-1, a.vocab), torch.from_numpy(tgt).reshape(-1)
        ).backward()
        return tuple(tuple(x.detach() for x in layer) for layer in st)

    t0 = time.perf_counter()
    acc0 = aggregate_init(a.vocab, stats_from_trace(tr))
    jax.block_until_ready(fused(acc0, params, carry0, batches[0]))
    jax.block_until_ready(base(params, carry0, batches[0]))
    compile_s = time.perf_counter() - t0
    names = ("jax_fused", "jax_base", "torch_thesis", "torch_plain")
    times = {k: [] for k in names}
    for r in range(a.repeats):
        acc = aggregate_init(a.vocab, stats_from_trace(tr))
        tacc = thesis_init()
        carries = {"jax_fused": carry0, "jax_base": carry0}
        states = {"torch_thesis": state0, "torch_plain": state0}
        for c, ((inp, tgt), b) in enumerate(zip(chunks, batches)):
            for k in names if (c + r) % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                if k == "jax_fused":
                    acc, carries[k] = jax.block_until_ready(fused(acc, params, carries[k], b))
                elif k == "jax_base":
                    _, carries[k] = jax.block_until_ready(base(params, carries[k], b))
                elif k == "torch_thesis":
                    tensors, states[k] = produce(hooked_model, store, inp, tgt, states[k])
                    thesis_update(tacc, tensors, inp, tgt)
                else:
                    states[k] = torch_plain(states[k], inp, tgt)
                times[k].append(time.perf_counter() - t0)
        jax.block_until_ready(aggregate_finalize(acc))
        thesis_finalize(tacc)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    m_jax = med["jax_fused"] - med["jax_base"]
    m_torch = med["torch_thesis"] - med["torch_plain"]
    print(
        f"\n## aggregation inside a whole evaluation pass (all 4 modules, both directions, "
        f"both keyings; per-chunk medians over {a.repeats} x {len(chunks)} chunks, "
        f"contenders interleaved per chunk; jax compile {compile_s:.1f} s)\n"
    )
    print(
        "| framework | pass with aggregation (ms/chunk) | same pass, no aggregation (ms/chunk) | aggregation (ms/chunk) |"
    )
    print("|---|---|---|---|")
    print(
        f"| thesis: torch hooks + per-token loop | {med['torch_thesis']:.2f} | "
        f"{med['torch_plain']:.2f} | {m_torch:.2f} |"
    )
    print(
        f"| jaxdyn: on-device reductions + aggregate_update | {med['jax_fused']:.2f} | "
        f"{med['jax_base']:.2f} | {m_jax:.2f} |"
    )
    print(
        f"\naggregation speed-up (thesis / jaxdyn marginal cost): {m_torch / max(m_jax, 1e-9):.1f}x; "
        f"whole pass with aggregation: {med['torch_thesis'] / med['jax_fused']:.1f}x"
    )


if __name__ == "__main__":
    main()
