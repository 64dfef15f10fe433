"""Hardware ceilings behind the speed goals: GEMM rate, memory streaming, decoder pieces.

    python benchmarks/ceilings.py
    python benchmarks/ceilings.py --default-malloc   # glibc's malloc defaults

Prints (median ms of rounds, with the derived GFLOP/s or GB/s):

* a large ``X^T X`` (10,000 x 1,000) in jax: the CPU's usable fp32 GEMM rate, which
  bounds all-pairs linear CKA (``benchmarks/similarity.py --cka-only``);
* a plain NumPy ``sum`` and a jitted L1 + L2 row reduction over float32 arrays: the
  streaming rate that bounds per-token statistics of 10,000-d tensors
  (``benchmarks/sparsity.py``);
* the thesis decoder's three GEMMs ((700, 200) x (200, 10,000)) and the decoder +
  cross-entropy forward and backward, in jax and in PyTorch (``benchmarks/train_step.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from _timing import median_ms, setup_process

N, H, V = 700, 200, 10_000


def main():
    setup_process()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rows = []

    x = jnp.asarray(rng.standard_normal((10_000, 1_000), dtype=np.float32))
    gram = jax.jit(lambda a: a.T @ a)
    ms = median_ms(lambda: gram(x))
    rows.append(
        ("jax X^T X, 10,000 x 1,000", ms, f"{2 * 10_000 * 1_000**2 / ms / 1e6:.0f} GFLOP/s")
    )

    big = rng.standard_normal((35_000, 10_000), dtype=np.float32)  # 1.4 GB
    ms = median_ms(big.sum, rounds=3, n=1)
    rows.append(("numpy sum, 1.4 GB float32", ms, f"{big.nbytes / ms / 1e6:.1f} GB/s"))
    chunk = jnp.asarray(big[:7_000])
    norms = jax.jit(lambda a: (jnp.abs(a).sum(-1), (a * a).sum(-1)))
    ms = median_ms(lambda: norms(chunk)[0])
    rows.append(("jax L1 + L2 rows, 280 MB", ms, f"{chunk.nbytes / ms / 1e6:.1f} GB/s"))

    h = jnp.asarray(rng.standard_normal((N, H), dtype=np.float32))
    w = jnp.asarray(rng.uniform(-0.1, 0.1, (V, H)).astype(np.float32))
    b = jnp.zeros((V,), jnp.float32)
    g = jnp.asarray(rng.standard_normal((N, V), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, V, N), jnp.int32)
    for name, f, args in (
        ("jax decoder forward h W^T", lambda h, w: h @ w.T, (h, w)),
        ("jax decoder input grad g W", lambda g, w: g @ w, (g, w)),
        ("jax decoder weight grad g^T h", lambda g, h: g.T @ h, (g, h)),
    ):
        jf = jax.jit(f)
        rows.append((name, median_ms(lambda jf=jf, args=args: jf(*args)), ""))

    def xent(h, w, b):
        return optax.softmax_cross_entropy_with_integer_labels(h @ w.T + b, y).mean()

    gx = jax.jit(jax.grad(xent, (0, 1, 2)))
    rows.append(("jax decoder + cross-entropy fwd+bwd", median_ms(lambda: gx(h, w, b)), ""))

    th, tw = torch.from_numpy(np.array(h)), torch.from_numpy(np.array(w))
    tg, ty = torch.from_numpy(np.array(g)), torch.from_numpy(np.array(y)).long()
    with torch.no_grad():
        rows.append(("torch decoder forward", median_ms(lambda: th @ tw.T), ""))
        rows.append(("torch decoder input grad", median_ms(lambda: tg @ tw), ""))
        rows.append(("torch decoder weight grad", median_ms(lambda: tg.T @ th), ""))
    hr, wr = th.clone().requires_grad_(), tw.clone().requires_grad_()
    br = torch.zeros(V, requires_grad=True)

    def torch_xent():
        torch.nn.functional.cross_entropy(torch.nn.functional.linear(hr, wr, br), ty).backward()

    rows.append(("torch decoder + cross-entropy fwd+bwd", median_ms(torch_xent), ""))

    print(f"# jax {jax.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    print("| piece | median (ms) | rate |\n|---|---|---|")
    for name, ms, rate in rows:
        print(f"| {name} | {ms:.1f} | {rate} |")


if __name__ == "__main__":
    main()
