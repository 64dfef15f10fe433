"""Benchmark: DI of the syntax study's word pairs on a default-size Transformer LM (CD-T).

Workload: the first ``--sentences`` sentences of UD EWT dev with 3 to 39 words, each
preceded by ``<eos>``, and every word pair ``i < j`` with ``j - i <= --max-distance``
read at the later word, as the interactions study does (its ``make_batches``
buckets and batches). Model: the default preset's size as a Transformer (d_model 128,
2 blocks, 4 heads, d_ff 512, vocabulary 10,000, context 40) with random weights
N(0, 1/fan_in) and biases and LayerNorm parameters perturbed by N(0, 0.1^2), so that the
GELU is curved and every rule does work (the model's own N(0, 0.02^2) initialisation
gives DI near 0); word ids from a CRC32 hash of the word (no trained vocabulary).

Compared, in the same process, interleaved rounds, medians:

* **jaxdyn**: :func:`jaxdyn.decompose.transformer.interdependence_batch` on the study's
  padded batches (both spaces, hidden and logits, from one call), beta-only
  propagation, default rules (``bias="separate"``, ``activation="shapley"``) and CD-T's
  released rules (``bias="proportional"``, ``activation="irrelevant_first"``);
* **PyTorch, CD-T's way**: per sentence (unpadded), every source set (each word, each
  pair's union) in one batch, relevant and irrelevant parts (and the bias term for
  separate biases) propagated through the model with the same rules
  (``run_torch`` below, written here from the rules, float32, ``torch.no_grad``),
  DI of the top residual stream and of the formed logits.

The DI values of the two are checked to agree (max absolute difference printed).
Throughput is pairs per second of wall time; CPU time (all threads) is printed too.

Usage: ``python benchmarks/interdependence_transformer.py [--sentences N] [--data-dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxdyn.data.conllu import read_conllu  # noqa: E402
from jaxdyn.decompose import transformer as cdt  # noqa: E402
from jaxdyn.models.transformer import language_model  # noqa: E402
from jaxdyn.studies.interactions.pairs import make_batches, sentence_pairs  # noqa: E402

V, D, L, H, F, C = 10_000, 128, 2, 4, 512, 40
CDT_RULES = {"bias": "proportional", "activation": "irrelevant_first"}


def make_params(seed=0):
    model = language_model(V, d_model=D, num_layers=L, heads=H, d_ff=F, context=C)
    p = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]
    leaves, tree = jax.tree_util.tree_flatten(p)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    # weights N(0, 1/fan_in) (curved GELU, unit-scale activations), biases perturbed by N(0, 0.1^2)
    new = [
        a + 0.1 * jax.random.normal(k, a.shape)
        if a.ndim == 1
        else jax.random.normal(k, a.shape) / np.sqrt(a.shape[0])
        for a, k in zip(leaves, keys)
    ]
    return jax.tree_util.tree_unflatten(tree, new)


def load(data_dir: Path, n: int, max_distance: int):
    sents = read_conllu(data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu")
    sents = [s for s in sents if 3 <= len(s.words) <= C - 1][:n]
    ids = [
        np.array([1 + zlib.crc32(w.lower().encode()) % (V - 1) for w in s.words], np.int32)
        for s in sents
    ]
    pair_sets = [sentence_pairs(s.heads, max_distance) for s in sents]
    return ids, pair_sets


# ----------------------------------------------------------------------------- PyTorch


def torch_params(params):
    import torch

    return jax.tree_util.tree_map(lambda a: torch.as_tensor(np.asarray(a)), params)


def run_torch(tp, tokens, pairs, targets, bias: str, activation: str):
    """CD-T of every set of one sentence (rel, irr[, bias]) in PyTorch; DI hidden and logits."""
    import torch

    erf_gelu = torch.nn.functional.gelu
    t = len(tokens)
    tok = torch.as_tensor(tokens, dtype=torch.long)
    n = len(pairs)
    sets = torch.zeros((t + 1 + n, t))
    sets[torch.arange(t), torch.arange(t)] = 1.0
    rows = torch.arange(n)
    sets[t + 1 + rows, torch.as_tensor(pairs[:, 0])] = 1.0
    sets[t + 1 + rows, torch.as_tensor(pairs[:, 1])] = 1.0
    emb = tp["embed"]["weight"][tok]
    pos = tp["pos"]["weight"][:t]
    m = sets[:, :, None]
    sep = bias == "separate"
    parts = (
        [m * emb, (1 - m) * emb, pos.expand_as(m * emb).clone()]
        if sep
        else [m * (emb + pos), (1 - m) * (emb + pos)]
    )

    def share(a, b):
        tot = a.abs() + b.abs()
        return torch.where(tot > 0, a.abs() / torch.where(tot > 0, tot, torch.ones_like(tot)), 0.5)

    def add_bias(ps, c, wa, wb):
        if sep:
            return [ps[0], ps[1], ps[2] + c]
        w = share(wa, wb)
        return [ps[0] + w * c, ps[1] + (1 - w) * c]

    def lin(ps, w, c):
        out = [p @ w for p in ps]
        return add_bias(out, c, out[0], out[1])

    def ln(ps, q, x_tot):
        mu = x_tot.mean(-1, keepdim=True)
        sig = torch.sqrt(((x_tot - mu) ** 2).mean(-1, keepdim=True) + 1e-5)
        out = [q["scale"] * (p - p.mean(-1, keepdim=True)) / sig for p in ps]
        return add_bias(out, q["bias"], ps[0], ps[1])

    def gelu(ps):
        b, g = ps[0], ps[1]
        i = ps[2] if sep else torch.zeros_like(b)
        f_i, f_all, f_gi = erf_gelu(i), erf_gelu(b + g + i), erf_gelu(g + i)
        if activation == "irrelevant_first":
            nb, ng = f_all - f_gi, f_gi - f_i
        else:
            f_bi = erf_gelu(b + i)
            nb, ng = 0.5 * (f_bi - f_i + f_all - f_gi), 0.5 * (f_gi - f_i + f_all - f_bi)
        return [nb, ng, f_i] if sep else [nb, ng + f_i]

    def ln_total(x, q):  # the forward pass's LayerNorm
        mu = x.mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5) * q[
            "scale"
        ] + q["bias"]

    x = emb + pos
    mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
    dh = D // H
    for l in range(L):
        p, mp = tp[f"block_{l}"], tp[f"block_{l}"]["mlp"]
        a = p["attn"]
        h = ln_total(x, p["ln_1"])
        q = (h @ a["wq"] + a["bq"]).reshape(t, H, dh).transpose(0, 1)
        k = (h @ a["wk"] + a["bk"]).reshape(t, H, dh).transpose(0, 1)
        probs = torch.softmax(
            (q @ k.transpose(1, 2) / dh**0.5).masked_fill(~mask, float("-inf")), -1
        )
        vals = lin(ln(parts, p["ln_1"], x), a["wv"], a["bv"])
        ctx = [  # batched matmuls: (H, T, T) @ (n, H, T, dh)
            (probs @ v.reshape(-1, t, H, dh).transpose(1, 2)).transpose(1, 2).reshape(-1, t, D)
            for v in vals
        ]
        parts = [u + w for u, w in zip(parts, lin(ctx, a["wo"], a["bo"]))]
        v_tot = (h @ a["wv"] + a["bv"]).reshape(t, H, dh)
        x = x + torch.einsum("hts,shd->thd", probs, v_tot).reshape(t, D) @ a["wo"] + a["bo"]
        hid = gelu(lin(ln(parts, p["ln_2"], x), mp["w_in"], mp["b_in"]))
        parts = [u + w for u, w in zip(parts, lin(hid, mp["w_out"], mp["b_out"]))]
        x = (
            x
            + erf_gelu(ln_total(x, p["ln_2"]) @ mp["w_in"] + mp["b_in"]) @ mp["w_out"]
            + mp["b_out"]
        )
    tg = torch.as_tensor(targets, dtype=torch.long)
    px, py = (
        torch.as_tensor(pairs[:, 0], dtype=torch.long),
        torch.as_tensor(pairs[:, 1], dtype=torch.long),
    )
    beta = parts[0]
    bx, by, bxy = beta[px, tg], beta[py, tg], beta[t + 1 + rows, tg]

    def di(a, b, ab):
        num, den = (ab - a - b).norm(dim=-1), ab.norm(dim=-1)
        return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), 0.0)

    # logits: final LayerNorm and decoder rules on the gathered rows (the sets' parts at the targets)
    w_dec, b_dec = tp["decoder"]["weight"], tp["decoder"]["bias"]
    rows_of = (px, py, t + 1 + rows)
    sel = [[pt[r, tg] for pt in parts] for r in rows_of]
    x_t = x[tg]
    logit_beta = [lin(ln(s, tp["ln_f"], x_t), w_dec.T, b_dec)[0] for s in sel]
    return di(bx, by, bxy).numpy(), di(*logit_beta).numpy()


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("JAXDYN_DATA_DIR", str(ROOT.parent / "shared" / "data")),
    )
    ap.add_argument("--sentences", type=int, default=40)
    ap.add_argument("--max-distance", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import torch

    ids, pair_sets = load(Path(args.data_dir), args.sentences, args.max_distance)
    n_pairs = sum(len(p["i"]) for p in pair_sets)
    batches = make_batches(
        ids, pair_sets, eos_id=0, max_seq_dist=args.max_distance, bucket_width=10, hidden=D,
        batch_elems=1 << 23,
    )  # fmt: skip
    params = make_params()
    tp = torch_params(params)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )
    print(
        f"# {len(ids)} EWT dev sentences, {n_pairs} pairs (j - i <= {args.max_distance}), "
        f"{len(batches)} padded batches; model d={D} L={L} H={H} F={F} V={V}"
    )

    def jax_all(rules):
        out = []
        for b in batches:
            r = cdt.interdependence_batch(
                params, b.tokens, b.pairs, b.targets, lengths=b.lengths, heads=H,
                space=("hidden", "logits"), **rules,
            )  # fmt: skip
            out.append((np.asarray(r["hidden"]), np.asarray(r["logits"])))
        return out

    def torch_all(rules):
        with torch.no_grad():
            return [
                run_torch(tp, np.concatenate([[0], w]), np.stack([p["i"] + 1, p["j"] + 1], 1), p["j"] + 1,
                          rules.get("bias", "separate"), rules.get("activation", "shapley"))
                for w, p in zip(ids, pair_sets)
            ]  # fmt: skip

    # float64: the two implementations agree to rounding (a float32 difference of the
    # proportional rule comes from |a| / (|a| + |b|) amplifying rounding where both are small)
    torch.set_default_dtype(torch.float64)
    tp64 = jax.tree_util.tree_map(lambda a: a.double(), tp)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        for name, rules in (("default rules", {}), ("CD-T rules", CDT_RULES)):
            err = 0.0
            for w, p in list(zip(ids, pair_sets))[:2]:
                toks = np.concatenate([[0], w]).astype(np.int32)
                prs = np.stack([p["i"] + 1, p["j"] + 1], 1).astype(np.int32)
                got = cdt.interdependence(
                    p64, toks, prs, prs[:, 1], heads=H, space=("hidden", "logits"), **rules
                )
                with torch.no_grad():
                    th, tl = run_torch(tp64, toks, prs, prs[:, 1], rules.get("bias", "separate"),
                                       rules.get("activation", "shapley"))  # fmt: skip
                err = max(err, np.abs(np.asarray(got["hidden"]) - th).max())
                err = max(err, np.abs(np.asarray(got["logits"]) - tl).max())
            print(f"# float64, first 2 sentences, {name}: max |DI jaxdyn - DI torch| = {err:.1e}")
    torch.set_default_dtype(torch.float32)

    def clock(fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w, time.process_time() - c

    for name, rules in (("default rules", {}), ("CD-T rules", CDT_RULES)):
        _, cold, _ = clock(lambda r=rules: jax_all(r))
        times = {"jaxdyn": [], "torch": []}
        for _ in range(args.rounds):
            jx, wj, cj = clock(lambda r=rules: jax_all(r))
            tx, wt, ct = clock(lambda r=rules: torch_all(r))
            times["jaxdyn"].append((wj, cj))
            times["torch"].append((wt, ct))
        # the values agree: scatter the batched results back to sentence order
        dh, dl = np.zeros(n_pairs), np.zeros(n_pairs)
        for b, (h, lg) in zip(batches, jx):
            keep = b.rows >= 0
            dh[b.rows[keep]], dl[b.rows[keep]] = h[keep], lg[keep]
        th = np.concatenate([h for h, _ in tx])
        tl = np.concatenate([lg for _, lg in tx])
        print(f"\n## {name} {rules or ''}: first jaxdyn call (compiles) {cold:.2f} s")
        for k, v in times.items():
            w = statistics.median(x for x, _ in v)
            c = statistics.median(x for _, x in v)
            print(f"{k:7s} {w:7.3f} s wall ({c:7.3f} s CPU): {n_pairs / w:9.0f} pairs/s")
        ratio = statistics.median(x for x, _ in times["torch"]) / statistics.median(
            x for x, _ in times["jaxdyn"]
        )
        print(f"speed-up jaxdyn / torch: {ratio:.1f}x")
        print(
            f"max |DI jaxdyn - DI torch|: hidden {np.max(np.abs(dh - th)):.2e}, "
            f"logits {np.max(np.abs(dl - tl)):.2e}; mean DI hidden {dh.mean():.4f}, logits {dl.mean():.4f}"
        )
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
