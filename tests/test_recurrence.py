import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.models.recurrence import lstm_recurrence, scan_forward


def _inputs(seed=0, t=7, b=3, h=5):
    k = jax.random.split(jax.random.key(seed), 4)
    return (
        jax.random.normal(k[0], (4 * h, h)) * 0.5,
        jax.random.normal(k[1], (t, b, 4 * h)),
        jax.random.normal(k[2], (b, h)),
        jax.random.normal(k[3], (b, h)),
    )


def test_fused_backward_equals_autodiff_of_the_scan_float64():
    with jax.enable_x64(True):
        args = tuple(a.astype(jnp.float64) for a in _inputs())
        outs = scan_forward(*args)
        weights = [
            jax.random.normal(jax.random.key(10 + i), o.shape, jnp.float64)
            for i, o in enumerate(outs)
        ]

        def loss(fn, *a):  # every output (h, c, gates, final carry) gets a cotangent
            return sum(jnp.sum(w * o) for w, o in zip(weights, fn(*a)))

        got = jax.grad(lambda *a: loss(lstm_recurrence, *a), argnums=(0, 1, 2, 3))(*args)
        want = jax.grad(lambda *a: loss(scan_forward, *a), argnums=(0, 1, 2, 3))(*args)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-12)
        for a, b in zip(lstm_recurrence(*args), outs):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fused_backward_float32_and_vmap():
    args = _inputs(1)
    g1 = jax.grad(lambda w, p: lstm_recurrence(w, p, args[2], args[3])[0].sum(), argnums=(0, 1))(
        *args[:2]
    )
    g2 = jax.grad(lambda w, p: scan_forward(w, p, args[2], args[3])[0].sum(), argnums=(0, 1))(
        *args[:2]
    )
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    pres = jnp.stack([args[1], args[1] * 0.5])
    vm = jax.vmap(lambda p: lstm_recurrence(args[0], p, args[2], args[3])[0])(pres)
    loop = jnp.stack([lstm_recurrence(args[0], p, args[2], args[3])[0] for p in pres])
    np.testing.assert_allclose(np.asarray(vm), np.asarray(loop), rtol=1e-6)
