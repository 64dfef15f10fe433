"""Weight metrics (jaxdyn.analysis.weight_metrics) against a float64 NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.weight_metrics import (
    ENTRY_METRICS,
    MATRIX_METRICS,
    entry_metrics,
    global_l2,
    matrix_metrics,
    tree_l2,
    tree_metrics,
    tree_metrics_eager,
)


def reference(w):
    """From the definitions (Hu et al. 2023; Roy & Vetterli 2007), float64, loops where clear."""
    w = np.asarray(w, np.float64)
    flat = w.ravel()
    l1 = float(np.sum(np.abs(flat)))
    l2 = float(np.sqrt(np.dot(flat, flat)))
    out = {
        "l1": l1,
        "l2": l2,
        "l1_l2": l1 / l2 if l2 > 0 else 0.0,
        "mean": float(flat.sum() / flat.size),
        "var": float(np.sum((flat - flat.mean()) ** 2) / flat.size),
    }
    if w.ndim == 2:
        # singular values as square roots of the eigenvalues of W^T W (not an SVD call)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        s = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(gram))[::-1], 0, None))
        p = s / s.sum() if s.sum() > 0 else np.zeros_like(s)
        h = -sum(pi * np.log(pi) for pi in p if pi > 0)
        out.update(
            frobenius=l2,
            spectral=s[0],
            nuclear=s.sum(),
            sv_mean=s.mean(),
            sv_var=np.mean((s - s.mean()) ** 2),
            stable_rank=l2**2 / s[0] ** 2 if s[0] > 0 else 0.0,
            effective_rank=float(np.exp(h)) if s.sum() > 0 else 0.0,
        )
    return out


@pytest.mark.parametrize("shape", [(7, 5), (5, 9), (12, 12), (1, 6)])
def test_matrix_metrics_match_float64_reference(shape):
    w = np.random.default_rng(sum(shape)).normal(size=shape) * 0.3
    got = jax.device_get(matrix_metrics(jnp.asarray(w, jnp.float32)))
    ref = reference(w)
    assert set(got) == set(MATRIX_METRICS) == set(ref)
    for k in MATRIX_METRICS:
        np.testing.assert_allclose(got[k], ref[k], rtol=2e-5, atol=1e-6, err_msg=k)


def test_known_values_and_invariances():
    # diag(3, 4): singular values 4, 3
    m = jax.device_get(matrix_metrics(jnp.diag(jnp.array([3.0, 4.0]))))
    np.testing.assert_allclose(
        [m["spectral"], m["nuclear"], m["l2"], m["l1_l2"], m["stable_rank"]],
        [4.0, 7.0, 5.0, 7.0 / 5.0, 25.0 / 16.0],
        rtol=1e-6,
    )
    w = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    a, b = (jax.device_get(matrix_metrics(jnp.asarray(x, jnp.float32))) for x in (w, q @ w))
    for k in ("spectral", "nuclear", "sv_mean", "sv_var", "stable_rank", "effective_rank", "l2"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, err_msg=k)  # orthogonal invariance
    c = jax.device_get(matrix_metrics(jnp.asarray(w.T)))
    for k in MATRIX_METRICS:
        np.testing.assert_allclose(a[k], c[k], rtol=1e-5, atol=1e-7, err_msg=k)  # transpose
    d = jax.device_get(matrix_metrics(jnp.asarray(3 * w)))
    for k in ("l1_l2", "stable_rank", "effective_rank"):  # scale invariant
        np.testing.assert_allclose(a[k], d[k], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(d["spectral"], 3 * a["spectral"], rtol=1e-5)
    # rank one: effective and stable rank 1
    r1 = jax.device_get(matrix_metrics(jnp.outer(jnp.arange(1.0, 5.0), jnp.arange(1.0, 4.0))))
    np.testing.assert_allclose([r1["stable_rank"], r1["effective_rank"]], [1.0, 1.0], rtol=1e-4)


def test_zero_tensors_are_zero_not_nan():
    m = jax.device_get(matrix_metrics(jnp.zeros((3, 4))))
    v = jax.device_get(entry_metrics(jnp.zeros(5)))
    assert all(np.isfinite(x) and x == 0 for x in [*m.values(), *v.values()])


def test_tree_metrics_jit_eager_vmap_loop_and_reference():
    rng = np.random.default_rng(3)
    tree = {
        "dense": {"kernel": rng.normal(size=(4, 6)), "bias": rng.normal(size=6)},
        "embed": rng.normal(size=(9, 4)),
    }
    tree = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), tree)
    jit = jax.device_get(tree_metrics(tree))
    eager = jax.device_get(tree_metrics_eager(tree))
    assert set(jit) == {"dense/bias", "dense/kernel", "embed"}
    assert set(jit["dense/bias"]) == set(ENTRY_METRICS)
    for path in jit:
        ref = reference(np.asarray(eval_path(tree, path)))
        for k, v in jit[path].items():
            np.testing.assert_allclose(v, eager[path][k], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(v, ref[k], rtol=2e-5, atol=1e-6, err_msg=f"{path} {k}")
    # population: (P, ...) leaves, one value per member == a loop over members
    pop = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x, -x]), tree)
    got = jax.device_get(tree_metrics(pop, batch_dims=1))
    for m in range(3):
        one = jax.device_get(tree_metrics(jax.tree_util.tree_map(lambda x, m=m: x[m], pop)))
        for path in one:
            for k in one[path]:
                np.testing.assert_allclose(got[path][k][m], one[path][k], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="batch_dims"):
        tree_metrics_eager({"b": jnp.ones(3)}, batch_dims=2)


def eval_path(tree, path):
    for k in path.split("/"):
        tree = tree[k]
    return tree


def test_global_l2_and_errors():
    t = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}
    np.testing.assert_allclose(global_l2(t), 5.0)
    # per leaf: the l2 of tree_metrics, keyed alike; a float64 sum of squares by hand
    rng = np.random.default_rng(3)
    tree = {"w": {"k": rng.normal(size=(5, 3))}, "b": rng.normal(size=4)}
    got = tree_l2(jax.tree_util.tree_map(jnp.asarray, tree))
    assert set(got) == {"w/k", "b"} == set(tree_metrics(tree))
    for name, x in (("w/k", tree["w"]["k"]), ("b", tree["b"])):
        np.testing.assert_allclose(got[name], np.sqrt(sum(v * v for v in x.ravel())), rtol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        global_l2({})
    with pytest.raises(ValueError, match="matrix"):
        matrix_metrics(jnp.ones(3))
