"""Benchmark: all-pairs SVCCA and linear CKA over a training trajectory.

Pairs: all pairs (with diagonal) within each layer across checkpoints, i.e.
``layers * C (C + 1) / 2`` (3 x 40 x 41 / 2 = 2,460 for the default sizes).

Compared, in the same run:
  * jaxdyn ``pairwise`` (factor each matrix once, one compiled call), timed at
    several checkpoint counts to show cost linear in the number of pairs;
  * a per-pair NumPy loop implementing google/svcca's recipe (SVD of each centred
    view to 99% variance, then ``np.cov`` / rescale / pinv / matrix square roots /
    SVD; mean correlation) and Kornblith's per-pair feature-space linear CKA,
    timed on a subset of pairs and extrapolated linearly (stated in the output);
  * repsim (C++ all-pairs), cca-zoo (per pair) and ckatorch (per pair), timed on a
    subset and extrapolated, each checked for agreeing values where the quantity
    is the same.

Usage: ``python benchmarks/similarity.py [--quick]``.

``--google PATH`` (a checkout of https://github.com/google/svcca, or its bare git
directory; never committed) instead times google/svcca's own code against jaxdyn on
12 views of 10,000 x 200 float32: one pair (google's tutorial SVCCA recipe: SVD to
99% variance, then ``get_cca_similarity``; and ``compute_pwcca``) and all 78 pairs
(with diagonal), contenders interleaved round by round (order alternating), medians
of wall and process CPU time, compile timed separately; in the same rounds the
pieces of a pair (prepare, Gram and cross GEMMs, a 4-view block GEMM: this CPU's
float32 GEMM rate, eigh, small SVD), from which the floors of one pair and of the 78
pairs are printed. Without PATH that mode prints a message and skips google's rows.
``--one-thread`` runs both contenders on one thread (OpenBLAS and XLA:CPU), whose
CPU times are robust when other jobs share the cores; the allocator is tuned as by
jaxdyn's CLI unless ``--default-malloc``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

if "--blas-threads" in sys.argv:  # must precede numpy/jax (OpenBLAS reads it at load)
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]
if "--one-thread" in sys.argv:  # both contenders on one core: numpy's OpenBLAS and XLA:CPU
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis._linalg import GRAM_TIERS, sample_weights
from jaxdyn.analysis.pairwise import pairwise
from jaxdyn.analysis.similarity import cca_factor, svcca
from jaxdyn.runtime import tune_host_allocator

ALLOCATOR = "glibc default"  # main() tunes it as jaxdyn's CLI does, unless --default-malloc


def trajectory(layers, c, n, d, seed=0):
    """Synthetic activations with a decaying spectrum that drift over checkpoints."""
    rng = np.random.default_rng(seed)
    spec = (1.0 / np.arange(1, d + 1) ** 0.7).astype(np.float32)
    out = np.empty((layers, c, n, d), np.float32)
    for l in range(layers):
        latent = rng.standard_normal((n, d), dtype=np.float32) * spec
        mix = rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)
        for t in range(c):
            mix = mix + 0.15 * rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)
            noise = 0.05 * rng.standard_normal((n, d), dtype=np.float32)
            out[l, t] = np.tanh(latent @ mix) + noise
    return out


# ----------------------------------------------------------------------------- NumPy loop
def np_svd_reduce(a, keep=0.99):
    ac = a - a.mean(axis=0)
    u, s, _ = np.linalg.svd(ac, full_matrices=False)
    k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), keep) + 1)
    return u[:, :k] * s[:k]


def np_google_cca_mean(a, b):
    a1, a2 = a.T, b.T
    nx = a1.shape[0]
    cov = np.cov(a1, a2)
    sxx, sxy, syy = cov[:nx, :nx], cov[:nx, nx:], cov[nx:, nx:]
    xm, ym = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xm, syy / ym, sxy / np.sqrt(xm * ym)

    def isqrt(c):
        lam, v = np.linalg.eigh(np.linalg.pinv(c))
        return v @ np.diag(np.sqrt(np.maximum(lam, 0))) @ v.T

    s = np.linalg.svd(isqrt(sxx) @ sxy @ isqrt(syy), compute_uv=False)
    return float(np.mean(s))


def np_svcca(a, b):
    return np_google_cca_mean(np_svd_reduce(a), np_svd_reduce(b))


def np_linear_cka(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.sum((a.T @ b) ** 2) / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def pair_list(layers, c):
    i, j = np.triu_indices(c)
    return [(l, a, b) for l in range(layers) for a, b in zip(i, j)]


def time_subset(fn, xs, pairs, k):
    sub = pairs[:: max(1, len(pairs) // k)][:k]
    t = time.perf_counter()
    vals = [fn(xs[l, a], xs[l, b]) for l, a, b in sub]
    return (time.perf_counter() - t) / len(sub), sub, vals


class _Rows(list):
    def append(self, row):
        super().append(row)
        print("ROW", row, flush=True)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kw))
    return time.perf_counter() - t, out


def cka_only(quick):
    layers, c, n, d = (3, 8, 2000, 64) if quick else (3, 40, 10000, 200)
    xs = trajectory(layers, c, n, d)
    pairs = pair_list(layers, c)
    sub = jnp.asarray(xs)
    print(f"# {layers} layers x {c} checkpoints x ({n} x {d}); {len(pairs)} pairs")
    print(f"# load average at start: {os.getloadavg()}")
    res = {}
    for label, kw in (("block Gram (default)", {}), ("per-pair (gram_cols=0)", {"gram_cols": 0})):
        t_first, _ = timed(pairwise, "linear_cka", sub, **kw)
        t, out = timed(pairwise, "linear_cka", sub, **kw)
        res[label] = (t, np.asarray(out))
        print(f"jaxdyn linear_cka {label}: warm {t:.2f}s (first {t_first:.2f}s)", flush=True)
    g, p = res["block Gram (default)"][1], res["per-pair (gram_cols=0)"][1]
    print(f"max |block Gram - per-pair| = {np.abs(g - p).max():.2e}")
    k = 12 if quick else 60
    t_ck, sel, vals = time_subset(np_linear_cka, xs, pairs, k)
    for (l, a, b), v in zip(sel, vals):
        assert abs(v - g[l, a, b]) < 1e-4, ("numpy cka disagrees", v, g[l, a, b])
    t_np = t_ck * len(pairs)
    print(f"NumPy per-pair loop (extrapolated from {len(sel)} pairs): {t_np:.1f}s")
    for label, (t, _) in res.items():
        print(f"  NumPy loop / jaxdyn {label}: {t_np / t:.1f}x")
    print(f"# load average at end: {os.getloadavg()}")


# ----------------------------------------------------------------------------- vs google
def _load_google(path):
    """Import google/svcca's ``cca_core`` and ``pwcca`` from a checkout or bare git dir."""
    import importlib
    import subprocess
    import tempfile
    from pathlib import Path

    folder = Path(path)
    if not (folder / "cca_core.py").is_file():
        out = Path(tempfile.mkdtemp())
        for f in ("cca_core.py", "pwcca.py"):
            src = subprocess.run(
                ["git", f"--git-dir={folder}", "show", f"HEAD:{f}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            (out / f).write_text(src)
        folder = out
    sys.path.insert(0, str(folder))
    return importlib.import_module("cca_core"), importlib.import_module("pwcca")


def _google_svcca(cca_core, a, b, keep=0.99):
    """google/svcca's tutorial recipe on samples-first views: SVD of each (neurons x
    datapoints) centred view to ``keep`` of its variance, then get_cca_similarity."""
    red = []
    for act in (a.T, b.T):
        c = act - np.mean(act, axis=1, keepdims=True)
        _, sv, vt = np.linalg.svd(c, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(sv**2) / np.sum(sv**2), keep) + 1)
        red.append(np.dot(sv[:k] * np.eye(k), vt[:k]))
    res = cca_core.get_cca_similarity(red[0], red[1], epsilon=1e-10, verbose=False)
    return float(np.mean(res["cca_coef1"]))


def _once(fn):
    """Wall and process CPU time (s) of one call, waited for, and its result."""
    t, c = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t, time.process_time() - c, out


def _ops(x, y):
    """The pieces of one pair (``svcca`` keep 0.99, Gram method), each op jitted alone,
    with their float32 flop counts (0: not a GEMM)."""
    from jaxdyn.analysis._linalg import basis_svd, prepare, sample_weights
    from jaxdyn.analysis.similarity import cca_factor

    n, d = x.shape
    w = sample_weights(n, None, jnp.float32)
    z = jax.jit(lambda a: prepare(a, w))(x)
    zy = jax.jit(lambda a: prepare(a, w))(y)
    g = z.T @ z
    wide = jnp.concatenate([z, zy, z[::-1], zy[::-1]], axis=1)  # (N, 4 D): a block of 4
    gemm = jax.jit(lambda a, b: a.T @ b)
    return {
        "cca_factor gram (one view)": (jax.jit(lambda a: cca_factor(a, w, 0.99, "gram")), x, 0),
        "cca_factor svd (one view, float64 SVD)": (jax.jit(lambda a: basis_svd(a, w)), x, 0),
        "prepare (centre, weight, rescale)": (jax.jit(lambda a: prepare(a, w)), x, 0),
        "Gram z^T z (N x D x D GEMM)": (gemm, (z, z), 2 * n * d * d),
        "cross zx^T zy (N x D x D GEMM)": (gemm, (z, zy), 2 * n * d * d),
        "block Z^T Z (N x 4D x 4D GEMM)": (gemm, (wide, wide), 2 * n * (4 * d) ** 2),
        "eigh D x D float32": (jax.jit(jnp.linalg.eigh), g, 0),
        "svd D x D values only": (jax.jit(lambda a: jnp.linalg.svd(a, compute_uv=False)), g, 0),
    }


def vs_google(path, rounds, quick):
    """google/svcca's own code vs jaxdyn: one pair and all 78 pairs of 12 views, the
    pieces of a pair and the float32 GEMM rate, all interleaved round by round."""
    import statistics

    from jaxdyn.analysis.similarity import pwcca

    c, n, d = (12, 2000, 64) if quick else (12, 10000, 200)
    xs = trajectory(1, c, n, d)[0]
    n_pairs = c * (c + 1) // 2
    print(f"# {c} views x ({n} x {d}) float32; {n_pairs} pairs (with diagonal)")
    print(
        f"# jax {jax.__version__}, numpy {np.__version__}; {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs"
    )
    print(f"# OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"# XLA_FLAGS={os.environ.get('XLA_FLAGS', 'unset')}; allocator: {ALLOCATOR}")
    print(f"# load average at start: {os.getloadavg()}")
    tiers, ratios = [], []
    for v in xs.astype(np.float64):  # which tier of the Gram method each view takes
        lam = np.maximum(np.linalg.eigvalsh(np.cov(v, rowvar=False))[::-1], 0)
        before = np.cumsum(lam) - lam  # kept: the 0.99-variance prefix, as _variance_mask
        kept = max(int(np.sum(before < 0.99 * lam.sum())), 1)
        ratios.append(lam[kept - 1] / lam[0])
        tiers.append(0 if ratios[-1] > GRAM_TIERS[0] else (1 if ratios[-1] > GRAM_TIERS[1] else 2))
    print(
        f"# smallest kept / largest eigenvalue of the centred views {min(ratios):.3g}-"
        f"{max(ratios):.3g}: Gram method tiers {sorted(set(tiers))} (0: basis never formed; "
        f"thresholds jaxdyn.analysis._linalg.GRAM_TIERS = {GRAM_TIERS})"
    )
    try:
        cca_core, gpw = _load_google(path)
    except Exception as e:  # absent or unreadable: skip google's rows, say why
        print(f"# google/svcca not available at {path!r} ({e}); skipping its rows")
        cca_core = gpw = None
    x, y = xs[0], xs[5]
    xj, yj, xsj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(xs)
    jd = {
        "svcca": lambda: svcca(xj, yj),
        "pwcca google": lambda: pwcca(xj, yj, convention="google"),
        "pwcca paper": lambda: pwcca(xj, yj),
        "pairwise svcca 78": lambda: pairwise("svcca", xsj),
        "pairwise pwcca google 78": lambda: pairwise("pwcca", xsj, convention="google"),
    }
    first = {k: _once(f)[0] for k, f in jd.items()}  # compile + first run
    ops = _ops(xj, yj)
    od = {}
    for k, (fn, args, _) in ops.items():
        args = args if isinstance(args, tuple) else (args,)
        jax.block_until_ready(fn(*args))
        od[k] = lambda f=fn, a=args: f(*a)
    gd = {}
    if cca_core is not None:
        gd = {
            "svcca": lambda: _google_svcca(cca_core, x, y),
            "pwcca google": lambda: float(gpw.compute_pwcca(x.T, y.T, epsilon=1e-10)[0]),
        }
    wall, cpu, vals = {}, {}, {}
    for r in range(rounds):  # interleave contenders round by round, order alternating
        tables = [("g:", gd), ("j:", jd), ("op:", od)]
        for prefix, table in tables[::-1] if r % 2 else tables:
            for k, f in table.items():
                tw, tc, out = _once(f)
                wall.setdefault(prefix + k, []).append(tw)
                cpu.setdefault(prefix + k, []).append(tc)
                vals[prefix + k] = out
    med = {k: statistics.median(v) for k, v in wall.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"\n# {rounds} interleaved rounds; medians; cpu = process CPU time (all threads)")
    print("\n| contender | wall (s) | cpu (s) | first call (s) | value |\n|---|---|---|---|---|")
    for k in [k for k in med if not k.startswith("op:")]:
        v = vals[k]
        shown = f"{float(v):.6f}" if np.ndim(v) == 0 else f"[0,5] {float(np.asarray(v)[0, 5]):.6f}"
        fc = f"{first[k[2:]]:.3f}" if k.startswith("j:") else ""
        print(f"| {k} | {med[k]:.4f} | {mcpu[k]:.4f} | {fc} | {shown} |")
    print("\n| op | wall (ms) | cpu (ms) | GFLOP/s (wall) |\n|---|---|---|---|")
    for k, (_, _, flops) in ops.items():
        t = med["op:" + k]
        rate = f"{flops / t / 1e9:.0f}" if flops else ""
        print(f"| {k} | {1e3 * t:.2f} | {1e3 * mcpu['op:' + k]:.2f} | {rate} |")
    n_off = c * (c - 1) // 2
    floors = {}
    for label, t in (("wall", med), ("cpu", mcpu)):
        op = {k: t["op:" + k] for k in ops}
        floor1 = (
            3 * op["cross zx^T zy (N x D x D GEMM)"]
            + 2 * op["prepare (centre, weight, rescale)"]
            + 2 * op["eigh D x D float32"]
            + op["svd D x D values only"]
        )
        gemm78 = n_off * op["block Z^T Z (N x 4D x 4D GEMM)"] / 16  # at the block GEMM's rate
        floors[label] = floor1, gemm78
        print(
            f"\n{label}: floor of one pair (3 N x D x D GEMMs + 2 prepare + 2 eigh + 1 small "
            f"SVD, measured above) {1e3 * floor1:.1f} ms, of which GEMMs "
            f"{3e3 * op['cross zx^T zy (N x D x D GEMM)']:.1f} ms; jaxdyn svcca "
            f"{1e3 * t['j:svcca']:.1f} ms"
        )
        print(
            f"{label}: floor of {n_pairs} pairs: {n_off} cross products of distinct views at the "
            f"block GEMM's rate {1e3 * gemm78:.0f} ms + {c} factors "
            f"{1e3 * c * op['cca_factor gram (one view)']:.0f} ms + {n_off} small SVDs "
            f"{1e3 * n_off * op['svd D x D values only']:.0f} ms; jaxdyn "
            f"{1e3 * t['j:pairwise svcca 78']:.0f} ms"
        )
    if gd:
        for label, t in (("wall", med), ("cpu", mcpu)):
            gs, js, j78 = t["g:svcca"], t["j:svcca"], t["j:pairwise svcca 78"]
            print(
                f"{label}: single pair svcca google / jaxdyn = {gs / js:.1f}x (goal 20x); "
                f"{n_pairs} pairs (google per pair x {n_pairs}, no reuse in its code) "
                f"{gs * n_pairs:.1f}s / {j78:.3f}s = {gs * n_pairs / j78:.0f}x (goal 100x); "
                f"pwcca google single {t['g:pwcca google'] / t['j:pwcca google']:.1f}x, "
                f"{n_pairs} pairs {t['g:pwcca google'] * n_pairs / t['j:pairwise pwcca google 78']:.0f}x"
            )
        for label, t in (("wall", med), ("cpu", mcpu)):
            g1, (floor1, gemm78) = t["g:svcca"], floors[label]
            print(
                f"goals need ({label}): single pair <= {1e3 * g1 / 20:.1f} ms (floor "
                f"{1e3 * floor1:.1f}), {n_pairs} pairs <= {1e3 * g1 * n_pairs / 100:.0f} ms "
                f"(distinct-view cross products alone {1e3 * gemm78:.0f})"
            )
        print(
            f"values: svcca google {vals['g:svcca']:.6f} jaxdyn {float(vals['j:svcca']):.6f}; "
            f"pwcca google {vals['g:pwcca google']:.6f} jaxdyn {float(vals['j:pwcca google']):.6f}"
        )
    import resource

    temp = svcca.lower(xj, yj).compile().memory_analysis().temp_size_in_bytes
    faults = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        jax.block_until_ready(svcca(xj, yj))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(
        f"svcca(x, y): compiled temp buffer {temp / 2**20:.1f} MiB; minor page faults per "
        f"call {faults} (allocator: {ALLOCATOR})"
    )
    print(f"# load average at end: {os.getloadavg()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--google", metavar="PATH", help="google/svcca checkout: time it vs jaxdyn")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (--google)")
    ap.add_argument(
        "--blas-threads",
        help="OPENBLAS_NUM_THREADS for numpy and jaxlib's LAPACK (both contenders)",
    )
    ap.add_argument("--no-scaling", action="store_true", help="time jaxdyn at full C only")
    ap.add_argument(
        "--cka-only",
        action="store_true",
        help="linear CKA only at full C: block-Gram vs per-pair path vs NumPy loop",
    )
    ap.add_argument(
        "--one-thread",
        action="store_true",
        help="numpy's OpenBLAS and XLA:CPU on one thread each (robust under shared load)",
    )
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's allocator defaults (the CLI tunes them: jaxdyn.runtime)",
    )
    args = ap.parse_args()
    global ALLOCATOR
    if not args.default_malloc:
        ALLOCATOR = f"tuned={tune_host_allocator()}"
    if args.google is not None:
        return vs_google(args.google, args.rounds, args.quick)
    if args.cka_only:
        return cka_only(args.quick)
    layers, c, n, d = (3, 8, 2000, 64) if args.quick else (3, 40, 10000, 200)
    counts = [c] if args.no_scaling else [c // 4, c // 2, c]
    xs = trajectory(layers, c, n, d)
    pairs = pair_list(layers, c)
    n_pairs = len(pairs)
    dev = jax.devices()[0]
    print(f"# {layers} layers x {c} checkpoints x ({n} x {d}); {n_pairs} within-layer pairs")
    print(
        f"# device: {dev.platform} {dev.device_kind}; {platform.processor() or platform.machine()}"
    )
    rows = _Rows()

    # ---- jaxdyn: linear in pairs -------------------------------------------------
    res = {}
    for metric, opts in (("svcca", {"keep": 0.99}), ("linear_cka", {})):
        for cc in counts:
            sub = jnp.asarray(xs[:, :cc])
            t_first, _ = timed(pairwise, metric, sub, **opts)
            t, out = timed(pairwise, metric, sub, **opts)
            np_ = layers * cc * (cc + 1) // 2
            res[(metric, cc)] = (t, np.asarray(out))
            print(
                f"jaxdyn {metric:10s} C={cc:3d} pairs={np_:5d} first={t_first:7.2f}s "
                f"warm={t:7.2f}s  {1e3 * t / np_:6.2f} ms/pair"
            )
            rows.append(
                (
                    f"jaxdyn pairwise {metric}",
                    np_,
                    t,
                    f"measured (warm; first call {t_first:.1f}s incl. compile)",
                )
            )
    sv = res[("svcca", c)][1]
    ck = res[("linear_cka", c)][1]

    # ---- per-pair NumPy loop (google/svcca recipe; Kornblith CKA) -------------------
    k_np = 3 if args.quick else 4
    t_sv, sub, vals = time_subset(np_svcca, xs, pairs, k_np)
    for (l, a, b), v in zip(sub, vals):
        assert abs(v - sv[l, a, b]) < 2e-3, ("numpy svcca disagrees", v, sv[l, a, b])
    t_ck, sub, vals = time_subset(np_linear_cka, xs, pairs, 10)
    for (l, a, b), v in zip(sub, vals):
        assert abs(v - ck[l, a, b]) < 1e-4, ("numpy cka disagrees", v, ck[l, a, b])
    rows.append(
        (
            "NumPy per-pair loop svcca (google recipe)",
            n_pairs,
            t_sv * n_pairs,
            f"extrapolated from {k_np} pairs; values agree < 2e-3",
        )
    )
    rows.append(
        (
            "NumPy per-pair loop linear_cka",
            n_pairs,
            t_ck * n_pairs,
            "extrapolated from 10 pairs; values agree < 1e-4",
        )
    )

    # ---- peers ---------------------------------------------------------------------
    m = min(c, 6)
    mats = [xs[0, t].astype(np.float64) for t in range(m)]
    mp = m * (m + 1) // 2
    try:
        import repsim

        t0 = time.perf_counter()
        r_cka = repsim.cka(mats, kernel_type="linear", estimator="gretton")
        t_rc = (time.perf_counter() - t0) / mp
        np.testing.assert_allclose(r_cka, ck[0, :m, :m], atol=1e-4)
        rows.append(
            (
                "repsim cka linear/gretton (C++)",
                n_pairs,
                t_rc * n_pairs,
                f"extrapolated from {mp} pairs (M={m}); agrees < 1e-4",
            )
        )
        t0 = time.perf_counter()
        r_sv = repsim.svcca(mats, summary_type="yanai")
        t_rs = (time.perf_counter() - t0) / mp
        # repsim summarises with Yanai's GCD: sum rho^2 / sqrt(kx ky) (not the mean rho).
        # Observed: its svcca equals its full-rank cca (no 99% truncation), so the
        # check uses jaxdyn bases without truncation (keep=None).
        r_cca = repsim.cca(mats[:3], summary_type="yanai")
        same_as_cca = bool(np.allclose(r_sv[:3, :3], r_cca, atol=1e-8))
        fac = [
            cca_factor(
                jnp.asarray(a, jnp.float32), sample_weights(n, None, jnp.float32), None, "svd"
            )
            for a in mats[:3]
        ]
        for i in range(3):
            for j in range(3):
                rho = np.linalg.svd(np.asarray(fac[i].q.T @ fac[j].q), compute_uv=False)
                kx, ky = int(fac[i].mask.sum()), int(fac[j].mask.sum())
                y = np.sum(np.minimum(rho[: min(kx, ky)], 1) ** 2) / np.sqrt(kx * ky)
                assert abs(y - r_sv[i, j]) < 5e-3, ("repsim yanai disagrees", y, r_sv[i, j])
        rows.append(
            (
                "repsim svcca (Yanai GCD summary)",
                n_pairs,
                t_rs * n_pairs,
                f"extrapolated from {mp} pairs; equals repsim full cca: {same_as_cca}; "
                "Yanai of jaxdyn full-rank CCA agrees < 5e-3",
            )
        )
    except ImportError as e:
        rows.append(("repsim", n_pairs, float("nan"), f"not importable: {e}"))
    try:
        import torch
        from ckatorch.core import cka_base

        def tc(a, b):
            return float(cka_base(torch.from_numpy(a), torch.from_numpy(b), "linear"))

        t_tc, sub, vals = time_subset(tc, xs, pairs, 2)
        for (l, a, b), v in zip(sub, vals):
            assert abs(v - ck[l, a, b]) < 1e-3, ("ckatorch disagrees", v, ck[l, a, b])
        rows.append(
            (
                "ckatorch cka_base linear (Gram form)",
                n_pairs,
                t_tc * n_pairs,
                "extrapolated from 2 pairs; agrees < 1e-3",
            )
        )
    except ImportError as e:
        rows.append(("ckatorch", n_pairs, float("nan"), f"not importable: {e}"))
    try:
        from cca_zoo.linear import CCA

        def zoo_svcca(a, b):
            ra, rb = np_svd_reduce(a), np_svd_reduce(b)
            k = min(ra.shape[1], rb.shape[1])
            za, zb = CCA(n_components=k).fit_transform([ra, rb])
            return float(np.mean([abs(np.corrcoef(za[:, i], zb[:, i])[0, 1]) for i in range(k)]))

        t_z, sub, vals = time_subset(zoo_svcca, xs, pairs, 2)
        for (l, a, b), v in zip(sub, vals):
            assert abs(v - sv[l, a, b]) < 2e-3, ("cca-zoo disagrees", v, sv[l, a, b])
        rows.append(
            (
                "cca-zoo CCA on SVD-reduced views",
                n_pairs,
                t_z * n_pairs,
                "extrapolated from 2 pairs; agrees < 2e-3",
            )
        )
    except ImportError as e:
        rows.append(("cca-zoo", n_pairs, float("nan"), f"not importable: {e}"))

    # ---- table ---------------------------------------------------------------------
    jd = {r[0]: r[2] for r in rows if r[1] == n_pairs}
    print("\n| method | pairs | time (s) | vs jaxdyn | note |\n|---|---|---|---|---|")
    for name, npairs, t, note in rows:
        ref = jd["jaxdyn pairwise svcca"] if "cka" not in name else jd["jaxdyn pairwise linear_cka"]
        ratio = f"{t / ref:.1f}x" if npairs == n_pairs else ""
        print(f"| {name} | {npairs} | {t:.2f} | {ratio} | {note} |")
    # sanity: identity on the diagonal
    assert np.allclose(np.diagonal(sv, axis1=1, axis2=2), 1, atol=1e-4)
    assert float(svcca(xs[0, 0], xs[0, 0])) > 0.9999


if __name__ == "__main__":
    main()
