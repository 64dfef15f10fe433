"""Attachment scores of attention heads (jaxdyn.analysis.attention) vs a float64 NumPy
reference written from the definition, constructed parses, masks, jit/vmap."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.attention import (
    argmax_keys,
    attachment_counts,
    attachment_scores,
    previous_token_pattern,
)
from jaxdyn.config import preset  # config first: the study modules import it


def _reference(probs, heads, valid):
    """Chen et al. (2024) sec. 2.2 from the definition: for every arc (d, g) with both
    ends real, d's most-attended real word is g, or g's most-attended real word is d."""
    probs = np.asarray(probs, np.float64)
    n_heads, t, _ = probs.shape
    keys = [j for j in range(t) if valid[j]]
    out = {"either": np.zeros(n_heads), "dep_to_head": np.zeros(n_heads)}
    out["head_to_dep"] = np.zeros(n_heads)
    arcs = 0
    for d in range(t):
        g = heads[d]
        if g < 0 or not valid[d] or not valid[g]:
            continue
        arcs += 1
        for h in range(n_heads):
            best = {q: max(keys, key=lambda j, q=q: (probs[h, q, j], -j)) for q in (d, g)}
            dh, hd = best[d] == g, best[g] == d
            out["dep_to_head"][h] += dh
            out["head_to_dep"][h] += hd
            out["either"][h] += dh or hd
    return out, arcs


def _random_case(rng, n_heads=3, t=9, length=7, causal=True):
    logits = rng.normal(size=(n_heads, t, t)) * 3
    if causal:
        logits = np.where(np.tril(np.ones((t, t), bool)), logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    heads = -np.ones(t, np.int64)
    root = rng.integers(length)
    for i in range(length):  # a random tree over the first `length` positions
        if i != root:
            heads[i] = rng.choice([j for j in range(length) if j != i])
    valid = np.arange(t) < length
    return probs.astype(np.float32), heads.astype(np.int32), valid


@pytest.mark.parametrize("causal", [True, False])
def test_counts_equal_the_float64_reference(causal):
    rng = np.random.default_rng(0)
    fn = jax.jit(attachment_counts)
    for _ in range(6):
        probs, heads, valid = _random_case(rng, causal=causal)
        ref, arcs = _reference(probs, heads, valid)
        got = fn(probs, heads, valid)
        assert int(got["arcs"]) == arcs == 6
        for k in ("either", "dep_to_head", "head_to_dep"):
            np.testing.assert_array_equal(np.asarray(got[k]), ref[k], err_msg=k)
        eager = attachment_counts(jnp.asarray(probs), jnp.asarray(heads), jnp.asarray(valid))
        for k in got:
            np.testing.assert_array_equal(np.asarray(eager[k]), np.asarray(got[k]))


def test_an_attention_pattern_equal_to_the_parse_gives_uas_one():
    # "the old man saw a dog" with heads the->man, old->man, man->saw, saw=root, a->dog, dog->saw
    heads = np.array([2, 2, 3, -1, 5, 3, -1, -1], np.int32)  # two padding positions
    valid = np.arange(8) < 6
    t = 8
    # every word attends to its head (dependent -> head), the root to itself
    a = np.zeros((1, t, t), np.float32)
    for i in range(t):
        a[0, i, heads[i] if heads[i] >= 0 else i] = 1.0
    s = attachment_scores(a[None], heads[None], valid[None])
    assert s["arcs"] == 5
    assert float(s["either"][0]) == 1.0 and float(s["dep_to_head"][0]) == 1.0
    # a causal pattern (each word attends to itself or an earlier word): one query has
    # one argmax, so "man" recovers the->man but not old->man, "saw" recovers man->saw,
    # "dog" recovers dog->saw (dependent -> head) but not a->dog: 3 of 5 arcs
    b = np.zeros((1, t, t), np.float32)
    for q, k in [(0, 0), (1, 1), (2, 0), (3, 2), (4, 4), (5, 3), (6, 6), (7, 7)]:
        b[0, q, k] = 1.0
    s = attachment_scores(b[None], heads[None], valid[None])
    assert float(s["either"][0]) == pytest.approx(3 / 5)
    assert float(s["head_to_dep"][0]) == pytest.approx(2 / 5)
    assert float(s["dep_to_head"][0]) == pytest.approx(1 / 5)
    # a head that recovers every arc: a chain parse and the previous-token pattern
    chain = np.array([-1, 0, 1, 2, 3], np.int32)
    p = previous_token_pattern(5, heads=2)
    s = attachment_scores(p[None], chain[None], np.ones((1, 5), bool))
    np.testing.assert_array_equal(np.asarray(s["either"]), [1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(s["head_to_dep"]), [0.0, 0.0])


def test_padding_is_masked_out_of_keys_and_arcs():
    rng = np.random.default_rng(1)
    probs, heads, valid = _random_case(rng, t=9, length=6)
    # put the largest probability of every row on a padding key: it must be ignored
    probs[:, :, 8] = 5.0
    got = attachment_counts(probs, heads, valid)
    ref, arcs = _reference(probs, heads, valid)
    np.testing.assert_array_equal(np.asarray(got["either"]), ref["either"])
    assert int(argmax_keys(probs, valid).max()) < 6
    # an arc to a padding position does not count
    heads2 = heads.copy()
    heads2[0] = 7
    assert int(attachment_counts(probs, heads2, valid)["arcs"]) == arcs - (heads[0] >= 0)


def test_invariances_vmap_equals_loop_and_errors():
    rng = np.random.default_rng(2)
    cases = [_random_case(rng) for _ in range(4)]
    probs, heads, valid = (np.stack(x) for x in zip(*cases, strict=True))
    batched = jax.jit(jax.vmap(attachment_counts))(probs, heads, valid)
    for i in range(4):
        one = attachment_counts(probs[i], heads[i], valid[i])
        for k in one:
            np.testing.assert_array_equal(np.asarray(batched[k][i]), np.asarray(one[k]))
    s = attachment_scores(probs, heads, valid)
    total = sum(_reference(*c)[0]["either"] for c in cases)
    np.testing.assert_allclose(np.asarray(s["either"]), total / s["arcs"], rtol=1e-6)
    # permuting heads permutes the scores; a positive per-row scale changes nothing
    perm = np.array([2, 0, 1])
    sp = attachment_scores(probs[:, perm], heads, valid)
    np.testing.assert_array_equal(np.asarray(sp["either"]), np.asarray(s["either"])[perm])
    scaled = probs * rng.uniform(0.5, 2.0, size=(*probs.shape[:3], 1)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(attachment_scores(scaled, heads, valid)["either"]), np.asarray(s["either"])
    )
    with pytest.raises(ValueError, match="no dependency arc"):
        attachment_scores(probs, -np.ones_like(heads), valid)
    with pytest.raises(ValueError, match="must be"):
        attachment_scores(probs[0], heads, valid)


# --- the study's tables over a population (constructed trajectories, no model) ---


def _member_traj(rng, epochs=(0, 1, 2), layers=2, n_heads=3, arcs=40, rise=8):
    """``attention_trajectory``-shaped rows: per-head arc counts rising over epochs."""
    rows = []
    for e in epochs:
        lay = {}
        for layer in range(layers):
            dh = rng.integers(0, 10, n_heads) + rise * e * (np.arange(n_heads) == layer)
            hd = rng.integers(0, 5, n_heads)
            lay[layer] = {"either": dh + hd, "dep_to_head": dh, "head_to_dep": hd}
        rows.append({"epoch": e, "step": 10 * e, "layers": lay})
    return rows


def _population_findings(n_members=3, arcs=40):
    from jaxdyn.studies.attention.findings import findings

    rng = np.random.default_rng(5)
    trajs = {m: _member_traj(rng, arcs=arcs) for m in range(n_members)}
    seeds = [1111 + m for m in range(n_members)]
    return trajs, seeds, findings(trajs, arcs, 0.1, seeds=seeds, min_effect=0.05)


def test_attention_tables_have_a_row_per_member():
    from scipy import stats as sps

    from jaxdyn.studies.attention.report import best_head_rows, mean_rows, onset_rows

    arcs = 40
    trajs, seeds, f = _population_findings(arcs=arcs)
    head, rows = best_head_rows(f, seeds)
    assert head[:3] == ["epoch", "step", "seed"] and len(rows) == 3 * 3  # epochs x members
    for r in rows:
        m = seeds.index(r[2])
        t = next(x for x in trajs[m] if x["epoch"] == r[0])
        for layer in (0, 1):  # best head and UAS from the raw counts
            either = np.asarray(t["layers"][layer]["either"])
            h = int(np.argmax(either))
            assert r[3 + layer].startswith(f"h{h} {either[h] / arcs:.3f} (")
    assert [r[2] for r in rows if r[0] == 2] == seeds
    head, rows = onset_rows(f, seeds)
    assert head[:2] == ["layer", "seed"] and len(rows) == 2 * 3  # layers x members
    assert [r[1] for r in rows if r[0] == "layer 1"] == seeds
    # the mean table: mean over members and Student's t interval (scipy as the reference)
    head, rows = mean_rows(f)
    assert len(rows) == 3 and len(head) == 3
    for layer in (0, 1):
        v = np.array([max(trajs[m][2]["layers"][layer]["either"]) / arcs for m in range(3)])
        half = sps.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
        lo, hi = v.mean() - half, v.mean() + half
        assert rows[2][1 + layer] == f"{v.mean():.3g} [{lo:.3g}, {hi:.3g}]"


def test_attention_section_uses_every_member(tmp_path):
    import types

    from jaxdyn.studies.attention.compute import DIRECTIONS
    from jaxdyn.studies.attention.report import _section

    _, seeds, f = _population_findings()
    cfg = preset("smoke")
    ctx = types.SimpleNamespace(
        cfg=dataclasses.replace(cfg, seeds=3),
        workdir=tmp_path,
        task=lambda: types.SimpleNamespace(train=types.SimpleNamespace(num_tokens=1000)),
    )
    parsed = types.SimpleNamespace(inputs=np.zeros((5, 7)), skipped=0, arcs=40, unk=0.0)
    text, summary = _section(
        ctx, f, parsed, dict.fromkeys(DIRECTIONS, 4), 10, tmp_path / "a.png", seeds
    )
    assert "member 0" not in text and "mean over the 3 seeds" in text
    assert all(f"| 2 | 20 | {s} |" in text for s in seeds)  # last checkpoint, every seed
    assert all(f"| layer 0 | {s} |" in text for s in seeds)  # onsets per seed
    v = f["f1"]["per_layer"]["layer 0"]
    assert f"layer 0 {v.mean:.3g} [{v.lo:.3g}, {v.hi:.3g}]" in summary[0]["number"]
