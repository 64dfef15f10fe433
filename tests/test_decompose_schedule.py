"""Explicit algorithm choice in jaxdyn.decompose.lstm: ``schedule="packed" | "dense"``.

Before: the DI kernels chose the packed or the fixed-shape path by testing whether
pairs/targets/lengths were ``jax.core.Tracer`` instances (a hidden performance cliff
under ``jit`` and a deprecated namespace); the CD entry points validated inputs the
same way. Now the caller chooses, and the packed schedule refuses traced inputs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.decompose import (
    SCHEDULES,
    all_pairs,
    cd_batch,
    contextual_decomposition,
    interdependence,
    interdependence_batch,
)
from jaxdyn.models.lstm import language_model
from tests.reference.cd_ref import di_ref, numpy_params

V, E, H, T = 30, 8, 6, 10
DECOMPOSE = Path(__file__).resolve().parents[1] / "jaxdyn" / "decompose"


@pytest.fixture(scope="module")
def params():
    m = language_model(V, emb_dim=E, hidden=H, num_layers=2)
    p = m.init(jax.random.PRNGKey(1), jnp.zeros((1, 4), jnp.int32))["params"]
    return jax.tree_util.tree_map(lambda a: a * 2.0, p)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    toks = rng.integers(0, V, (3, T)).astype(np.int32)
    lengths = np.array([T, 7, 5], np.int32)
    pairs = np.full((3, 12, 2), -1, np.int32)
    for b, n in enumerate(lengths):
        pl = all_pairs(int(n), 3)[:12]
        pairs[b, : len(pl)] = pl
    target = np.stack([np.maximum(pairs[b, :, 1], n - 1) for b, n in enumerate(lengths)])
    return toks, pairs, target.astype(np.int32), lengths


def test_no_jax_core_in_decompose():
    for path in DECOMPOSE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "core":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "jax"), path
            if isinstance(node, ast.ImportFrom):
                assert node.module != "jax.core" and not (
                    node.module == "jax" and any(a.name == "core" for a in node.names)
                ), path


def test_packed_under_jit_raises_naming_the_argument(params, batch):
    toks, pairs, target, lengths = batch
    for traced in ("pairs", "target", "lengths"):
        args = {"pairs": pairs, "target": target, "lengths": lengths}

        def fn(x, name=traced, args=args):
            a = {**args, name: x}
            return interdependence_batch(
                params, toks, a["pairs"], a["target"], lengths=a["lengths"]
            )

        with pytest.raises(ValueError, match=rf"schedule='packed'.*{traced}.*schedule='dense'"):
            jax.jit(fn)(args[traced])
    with pytest.raises(ValueError, match="schedule='packed'"):
        jax.vmap(lambda pr: interdependence(params, toks[0], pr, T - 1))(pairs)


def test_unknown_schedule(params, batch):
    toks, pairs, target, _ = batch
    with pytest.raises(ValueError, match="schedule must be one of"):
        interdependence_batch(params, toks, pairs, target, schedule="fixed")
    assert SCHEDULES == ("packed", "dense")


@pytest.mark.parametrize("space", ["hidden", "logits"])
def test_dense_under_jit_equals_packed(params, batch, space):
    toks, pairs, target, lengths = batch
    packed = interdependence_batch(params, toks, pairs, target, lengths=lengths, space=space)
    dense_eager = interdependence_batch(
        params, toks, pairs, target, lengths=lengths, space=space, schedule="dense"
    )
    fn = jax.jit(
        lambda tk, pr, tg, ln: interdependence_batch(
            params, tk, pr, tg, lengths=ln, space=space, schedule="dense"
        )
    )
    dense = fn(toks, pairs, target, lengths)
    np.testing.assert_allclose(np.asarray(dense), np.asarray(packed), atol=1e-5)
    np.testing.assert_allclose(np.asarray(dense), np.asarray(dense_eager), atol=2e-5)
    assert float(np.max(np.asarray(packed))) > 1e-3


def test_dense_vmap_equals_loop(params, batch):
    toks, pairs, target, lengths = batch
    vm = jax.vmap(
        lambda tk, pr, tg, ln: interdependence(params, tk, pr, tg, length=ln, schedule="dense")
    )(toks, pairs, target, lengths)
    for b in range(3):
        one = interdependence(params, toks[b], pairs[b], target[b], length=lengths[b])
        np.testing.assert_allclose(np.asarray(vm[b]), np.asarray(one), atol=1e-5)


def test_packed_with_traced_tokens_and_params_is_fine(params, batch):
    """Only the schedule's inputs must be concrete: tokens and params may be traced."""
    toks, pairs, target, lengths = batch
    fn = jax.jit(lambda p, tk: interdependence_batch(p, tk, pairs, target, lengths=lengths))
    np.testing.assert_allclose(
        np.asarray(fn(params, toks)),
        np.asarray(interdependence_batch(params, toks, pairs, target, lengths=lengths)),
        atol=1e-6,
    )


def test_dense_float64_matches_reference_under_jit(params):
    tokens = np.random.default_rng(2).integers(0, V, T).astype(np.int32)
    pairs = all_pairs(T, 3)[:6]
    target = np.array([T - 1 - (k % 3) for k in range(6)], np.int32)
    ref = [di_ref(numpy_params(params), tokens, x, y, t) for (x, y), t in zip(pairs, target)]
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        fn = jax.jit(lambda pr, tg: interdependence(p64, tokens, pr, tg, schedule="dense"))
        np.testing.assert_allclose(np.asarray(fn(pairs, target)), ref, atol=1e-10)


def test_cd_validation_without_tracer_tests(params):
    """Traced tokens/lengths skip the value checks; concrete bad values still raise."""
    tokens = np.random.default_rng(3).integers(0, V, T).astype(np.int32)
    rel = np.zeros(T, bool)
    rel[2:4] = True
    eager = contextual_decomposition(params, tokens, rel, length=8)
    jitted = jax.jit(lambda tk, ln: contextual_decomposition(params, tk, rel, length=ln))(tokens, 8)
    np.testing.assert_allclose(np.asarray(jitted.beta_h), np.asarray(eager.beta_h), atol=1e-6)
    with pytest.raises(ValueError, match="token ids"):
        contextual_decomposition(params, np.full(T, V), rel)
    with pytest.raises(ValueError, match="length"):
        cd_batch(params, tokens[None], rel[None, None], lengths=[T + 1])
    with pytest.raises(ValueError, match="logit_ids"):
        jax.jit(lambda tk: contextual_decomposition(params, tk, rel, logit_ids=[V]))(tokens)
