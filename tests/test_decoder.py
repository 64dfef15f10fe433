import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.models import language_model, lstm_layer_scan
from jaxdyn.models.decoder import linear_decoder


def _args(dtype, lead=(3, 5), h=7, k=11, seed=0):
    r = np.random.default_rng(seed)
    return (
        jnp.asarray(r.standard_normal((*lead, h)), dtype),
        jnp.asarray(r.standard_normal((k, h)), dtype),
        jnp.asarray(r.standard_normal((k,)), dtype),
        jnp.asarray(r.standard_normal((*lead, k)), dtype),
    )


def test_forward_and_gradients_equal_numpy_float64():
    with jax.enable_x64(True):
        x, w, b, ct = _args(jnp.float64)
        out, vjp = jax.vjp(linear_decoder, x, w, b)
        dx, dw, db = vjp(ct)
        xn, wn, bn, gn = (np.asarray(a) for a in (x, w, b, ct))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(x @ w.T + b))
        np.testing.assert_allclose(np.asarray(out), xn @ wn.T + bn, rtol=1e-12)
        g2 = gn.reshape(-1, gn.shape[-1])  # dx = G W, dW = G^T x, db = column sums of G
        np.testing.assert_allclose(np.asarray(dx), gn @ wn, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            np.asarray(dw), g2.T @ xn.reshape(-1, xn.shape[-1]), rtol=1e-12, atol=1e-12
        )
        np.testing.assert_allclose(np.asarray(db), g2.sum(0), rtol=1e-12, atol=1e-12)


def test_float32_jit_vmap_and_no_retrace():
    x, w, b, ct = _args(jnp.float32)
    plain = jax.grad(lambda *a: jnp.sum(ct * (a[0] @ a[1].T + a[2])), argnums=(0, 1, 2))
    fused = jax.grad(lambda *a: jnp.sum(ct * linear_decoder(*a)), argnums=(0, 1, 2))
    jitted = jax.jit(fused)
    for got, want in zip(jitted(x, w, b), plain(x, w, b)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    for got, want in zip(jitted(x, w, b), fused(x, w, b)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
    jitted(x + 1.0, w, b)
    assert jitted._cache_size() == 1
    # vmap over a batch of weights equals a loop
    ws = jnp.stack([w, 2 * w, -w])
    vm = jax.vmap(lambda w_: jax.grad(lambda w2: jnp.sum(ct * linear_decoder(x, w2, b)))(w_))(ws)
    for i in range(3):
        one = jax.grad(lambda w2: jnp.sum(ct * linear_decoder(x, w2, b)))(ws[i])
        np.testing.assert_allclose(np.asarray(vm[i]), np.asarray(one), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tie", [False, True])
def test_model_gradient_equals_plain_decoder_expression(tie):
    """The model's loss gradient (tied weights accumulate both uses) vs autodiff of x W^T + b."""
    with jax.enable_x64(True):
        v, h = 30, 8
        model = language_model(v, emb_dim=h, hidden=h, num_layers=2, dropout=0.0, tie_weights=tie)
        toks = jax.random.randint(jax.random.key(1), (2, 6), 0, v)
        params = model.init(jax.random.key(0), toks)["params"]
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        ct = jax.random.normal(jax.random.key(2), (2, 6, v), jnp.float64)

        def plain(p):
            x = p["encoder"]["weight"][toks]
            z = jnp.zeros((2, h), jnp.float64)
            for name in ("l0", "l1"):
                x = lstm_layer_scan(p["rnn"][name], x, (z, z))[0]["h"]
            w = p["encoder"]["weight"] if tie else p["decoder"]["weight"]
            return jnp.sum(ct * (x @ w.T + p["decoder"]["bias"]))

        got = jax.grad(lambda p: jnp.sum(ct * model.apply({"params": p}, toks)[0]))(params)
        want = jax.grad(plain)(params)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
