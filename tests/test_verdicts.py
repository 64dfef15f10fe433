import dataclasses
import json

import numpy as np
import pytest
from scipy import stats as sps

from jaxdyn.report.markdown import verdict as verdict_word
from jaxdyn.studies.verdicts import (
    TABLE_HEADER,
    decide,
    decide_correlation,
    describe,
    markdown_row,
    t_critical,
    t_interval,
)

NAN = float("nan")


def _p_of_rho(rho, n):
    """Two-sided p of a correlation at n pairs (the t approximation the studies use)."""
    t = rho * np.sqrt((n - 2) / (1 - rho * rho))
    return 2 * sps.t.sf(abs(t), n - 2)


# --- intervals -------------------------------------------------------------------------


def test_t_critical_matches_scipy():
    for dof in [*range(1, 41), 57, 100, 333]:
        for level in (0.5, 0.9, 0.95, 0.99):
            ref = sps.t.ppf(0.5 + level / 2, dof)
            assert t_critical(level, dof) == pytest.approx(ref, rel=1e-13), (dof, level)
    assert t_critical(0.999, 1) == pytest.approx(sps.t.ppf(0.9995, 1), rel=1e-12)


def test_t_interval_matches_scipy_to_1e12():
    rng = np.random.default_rng(0)
    for n in (2, 3, 4, 5, 7, 10, 31):
        x = rng.normal(-0.2, 0.05, n)
        for level in (0.9, 0.95, 0.99):
            iv = t_interval(x, level)
            lo, hi = sps.t.interval(level, n - 1, loc=x.mean(), scale=sps.sem(x))
            assert iv.n == n and iv.mean == pytest.approx(x.mean(), abs=1e-15)
            assert abs(iv.lo - lo) < 1e-12 and abs(iv.hi - hi) < 1e-12, (n, level)


def test_t_interval_single_value_and_bad_input():
    iv = t_interval([0.3])
    assert iv.mean == 0.3 and iv.lo is None and iv.hi is None and iv.n == 1
    assert t_interval([0.1, 0.1, 0.1])[1:3] == pytest.approx((0.1, 0.1))  # zero spread
    with pytest.raises(ValueError, match="non-finite"):
        t_interval([0.1, NAN])
    with pytest.raises(ValueError, match="shape"):
        t_interval(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        t_interval([])
    with pytest.raises(ValueError, match="level"):
        t_critical(1.0, 3)
    with pytest.raises(ValueError, match="dof"):
        t_critical(0.95, 0)
    with pytest.raises(ValueError, match="dof"):
        t_critical(0.95, 2.5)


# --- the rule --------------------------------------------------------------------------


def test_significant_tiny_untrained_correlation_is_not_reproduced():
    n = 100_000
    untrained = np.array([-0.025, -0.026, -0.024])
    trained = np.array([-0.035, -0.034, -0.036])
    # the premise: every rho here is "significant" at 10^5 pairs (the old rule passes)
    assert all(_p_of_rho(r, n) < 1e-10 for r in [*untrained, *trained])
    v = decide_correlation(trained, untrained, margin=0.05)
    assert v.verdict is None and v.label == "inconclusive"
    assert v.effect == pytest.approx(-0.01) and v.n_predicted == 0
    # the untrained model alone against a zero baseline would pass without a margin
    assert decide_correlation(untrained, 0.0, margin=0.0).verdict is True
    # and a single untrained value as the baseline gives the same verdict
    assert decide_correlation(trained, -0.025, margin=0.05).verdict is None


def test_issue_12_numbers():
    # DI vs syntactic distance (issue 12): trained and untrained rho per sequential distance
    trained = [-0.185, -0.270, -0.211, -0.168, -0.158]
    untrained = [-0.187, -0.118, -0.021, +0.013, +0.026]
    jitter = np.array([0.0, 0.02, -0.02])  # three seeds around the same rho
    got = [
        decide_correlation(t + jitter, u + jitter / 2, margin=0.05).verdict
        for t, u in zip(trained, untrained)
    ]
    assert got == [None, True, True, True, True]  # distance 1: the untrained model has it too


def test_clear_effect_across_three_seeds_is_reproduced():
    v = decide([-0.21, -0.19, -0.20], [-0.02, -0.01, 0.0], direction=-1, margin=0.05)
    assert v.verdict is True and v.label == "reproduced"
    assert v.effect_hi < -0.05  # the interval excludes the margin
    assert v.n == 3 and v.failed == () and v.n_predicted == 3 and v.n_opposite == 0
    assert v.effects == pytest.approx((-0.19, -0.18, -0.20))
    assert v.mean == pytest.approx(-0.2) and v.baseline == pytest.approx(-0.01)
    lo, hi = sps.t.interval(0.95, 2, loc=-0.2, scale=sps.sem([-0.21, -0.19, -0.20]))
    assert (v.lo, v.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert "-0.05" in v.rule and "3 seeds" in v.rule and ">= 2 of 3" in v.rule
    assert verdict_word(v.verdict) == "**reproduced**"


def test_seed_fraction_decides_an_uncertain_size_not_an_uncertain_sign():
    untrained = [0.0, 0.0, 0.0]
    # mean 0.15 > 0.05 and 2 of 3 beyond, but one seed goes the other way: the interval
    # [-0.39, +0.69] crosses 0, so the sign is not established -> inconclusive
    trained = [0.30, 0.25, -0.10]
    v = decide(trained, untrained, direction=+1, margin=0.05)
    assert v.effect_lo < 0 < 0.05 < v.effect and v.n_predicted == 2 and v.n_opposite == 1
    assert v.verdict is None and "with the interval > 0" in v.rule
    # interval above 0 but not above the margin (0.013 < 0.05), mean and 2 of 3 seeds beyond
    trained = [0.09, 0.08, 0.045]
    v = decide(trained, untrained, direction=+1, margin=0.05)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(trained), scale=sps.sem(trained))
    assert 0 < lo < 0.05 and (v.effect_lo, v.effect_hi) == pytest.approx((lo, hi), abs=1e-12)
    assert v.verdict is True and v.n_predicted == 2
    assert decide(trained, untrained, direction=+1, margin=0.05, min_fraction=1.0).verdict is None
    # mirrored: contradicted by the same clause
    assert decide(-np.asarray(trained), untrained, direction=+1, margin=0.05).verdict is False
    # 2 of 3 beyond the margin but the mean is not: inconclusive, not contradicted
    v = decide([0.06, 0.06, -0.5], untrained, direction=+1, margin=0.05)
    assert v.n_predicted == 2 and v.effect < 0 and v.verdict is None
    # 1 of 3 is not 2/3
    assert decide([0.9, 0.01, 0.02], untrained, direction=+1, margin=0.05).verdict is None


@pytest.mark.parametrize(("s", "need"), [(2, 2), (3, 2), (4, 3), (5, 4), (6, 4), (9, 6)])
def test_seed_fraction_needs_ceil(s, need):
    v = decide(np.ones(s), np.zeros(s), direction=1, margin=0.1)
    assert f">= {need} of {s} seeds" in v.rule


def test_opposite_direction_is_contradicted():
    v = decide([-0.21, -0.19, -0.20], [0.0, 0.0, 0.0], direction=+1, margin=0.05)
    assert v.verdict is False and v.label == "contradicted"
    assert "contradicted if < -0.05" in v.rule
    # by the seed fraction too (interval below 0, not below the margin)
    v = decide([-0.09, -0.08, -0.045], [0.0, 0.0, 0.0], direction=+1, margin=0.05)
    assert -0.05 < v.effect_hi < 0 and v.verdict is False
    # the same with a seed the other way: the interval crosses 0, inconclusive
    assert decide([-0.30, -0.25, 0.10], 0.0, direction=+1, margin=0.05).verdict is None
    # mirror symmetry: flipping the data and the direction flips nothing else
    for tr in ([0.3, 0.25, -0.1], [0.2, 0.21, 0.19], [0.01, -0.02, 0.0]):
        a = decide(tr, 0.0, direction=1, margin=0.05)
        b = decide(-np.asarray(tr), 0.0, direction=-1, margin=0.05)
        assert a.verdict == b.verdict and a.effect == pytest.approx(-b.effect)


def test_nan_seed_is_reported_as_failed_and_excluded():
    trained = [-0.20, NAN, -0.22, -0.21]
    untrained = [0.0, 0.0, 0.0, np.inf]
    v = decide(trained, untrained, direction=-1, margin=0.05, seeds=[11, 12, 13, 14])
    assert v.failed == (12, 14) and v.seeds_used == (11, 13) and v.n == 2
    assert v.mean == pytest.approx(-0.21) and v.baseline == 0.0
    assert len(v.effects) == 2 and all(np.isfinite(v.effects))
    assert "failed seeds: 12, 14" in v.rule and "2 seeds" in v.rule and "of 4 seeds" in v.rule
    # 2 of 4 seeds is short of 2/3 (failed seeds count against), the interval still decides
    assert v.verdict is True and v.effect_hi < -0.05
    assert "2 failed: 12, 14" in markdown_row("x", v)
    # too few finite seeds: inconclusive, whatever the one left says
    v = decide([-0.9, NAN, NAN], 0.0, direction=-1, margin=0.05)
    assert v.verdict is None and v.n == 1 and v.failed == (1, 2)
    assert "only 1 finite seed(s), needs 2" in v.rule
    # no finite seed: nothing is a number, and it is JSON without NaN
    v = decide([NAN, NAN], 0.0, direction=-1, margin=0.05)
    assert v.verdict is None and v.mean is None and v.effect is None and v.effects == ()
    json.dumps(v.as_dict(), allow_nan=False)
    assert "no finite seed" in describe(v)
    # a non-finite shared baseline fails every seed
    assert decide([-0.2, -0.3], NAN, direction=-1, margin=0.05).failed == (0, 1)


def test_single_seed():
    v = decide([-0.3], [0.0], direction=-1, margin=0.05)  # default: one seed is not enough
    assert v.verdict is None and v.lo is None and v.hi is None and v.effect_lo is None
    assert v.mean == -0.3 and v.n == 1
    json.dumps(v.as_dict(), allow_nan=False)
    # opted in: the single seed decides by the seed-fraction clause (1 of 1)
    one = dict(direction=-1, margin=0.05, min_seeds=1)
    v = decide([-0.3], [0.0], **one)
    assert v.verdict is True and v.lo is None and "1 seed: no interval" in v.rule
    assert decide([-0.04], [0.0], **one).verdict is None
    assert decide([0.3], [0.0], **one).verdict is False
    assert "n/a" in markdown_row("x", v)


def test_require_sign_and_correlation_helper():
    # lower than at initialisation, but rho itself is not negative
    trained, untrained = [0.02, 0.03, 0.01], [0.15, 0.16, 0.14]
    assert decide_correlation(trained, untrained, margin=0.05).verdict is None
    assert decide_correlation(trained, untrained, margin=0.05, require_sign=False).verdict is True
    v = decide_correlation(trained, untrained, margin=0.05)
    assert "rho(trained) - rho(untrained) < -0.05" in v.rule and "trained mean < 0" in v.rule
    # contradicted needs rho of the opposite sign
    assert decide_correlation([0.2, 0.21, 0.19], 0.0, margin=0.05).verdict is False
    assert decide_correlation([-0.02, -0.01, -0.03], -0.2, margin=0.05).verdict is None
    with pytest.raises(ValueError, match=r"outside \[-1, 1\]"):
        decide_correlation([-1.2, 0.0], 0.0, margin=0.05)


def test_fisher_z():
    trained = np.array([-0.97, -0.99, -0.95])
    v = decide_correlation(trained, -0.1, margin=0.5, fisher_z=True)
    z = np.arctanh(trained)
    zi = t_interval(z)
    assert v.mean == pytest.approx(np.tanh(z.mean())) and -1 < v.lo < v.hi < -0.8
    assert (v.lo, v.hi) == pytest.approx(np.tanh([zi.lo, zi.hi]))
    assert v.baseline == pytest.approx(-0.1)
    assert v.effects == pytest.approx(tuple(z - np.arctanh(-0.1)))  # effects stay in z
    assert v.verdict is True and "z(rho trained) - z(rho untrained)" in v.rule
    assert t_interval(trained).lo < -1  # on the rho scale the interval leaves [-1, 1]
    v = decide_correlation([-1.0, -0.9, -0.8], 0.0, margin=0.1, fisher_z=True)
    assert v.failed == (0,)  # rho = -1 has no z


def test_bad_input():
    ok = dict(direction=-1, margin=0.05)
    with pytest.raises(ValueError, match="untrained"):
        decide([0.1, 0.2, 0.3], [0.1, 0.2], **ok)
    with pytest.raises(ValueError, match="trained must have shape"):
        decide(np.zeros((3, 2)), 0.0, **ok)
    with pytest.raises(ValueError, match="trained must have shape"):
        decide([], 0.0, **ok)
    for d in (0, 2, 0.5, True):
        with pytest.raises(ValueError, match="direction"):
            decide([0.1, 0.2], 0.0, direction=d, margin=0.05)
    for m in (-0.01, NAN, np.inf):
        with pytest.raises(ValueError, match="margin"):
            decide([0.1, 0.2], 0.0, direction=1, margin=m)
    for f in (0.0, 1.5):
        with pytest.raises(ValueError, match="min_fraction"):
            decide([0.1, 0.2], 0.0, min_fraction=f, **ok)
    with pytest.raises(ValueError, match="level"):
        decide([0.1, 0.2], 0.0, level=95, **ok)
    with pytest.raises(ValueError, match="min_seeds"):
        decide([0.1, 0.2], 0.0, min_seeds=0, **ok)
    with pytest.raises(ValueError, match="seeds must have 2 labels"):
        decide([0.1, 0.2], 0.0, seeds=[1], **ok)


def test_result_is_frozen_and_json():
    v = decide([-0.21, -0.19, -0.20], 0.0, direction=-1, margin=0.05, seeds=["s0", "s1", "s2"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.verdict = None
    d = json.loads(json.dumps(v.as_dict(), allow_nan=False))
    assert d["verdict"] is True and d["seeds_used"] == ["s0", "s1", "s2"] and d["n"] == 3


def test_markdown_row_and_describe():
    v = decide([-0.21, -0.19, -0.20], [-0.02, -0.01, 0.0], direction=-1, margin=0.05)
    row = markdown_row("DI | syntax", v)
    n_cols = TABLE_HEADER.splitlines()[0].count("|")
    assert row.count("|") - row.count("\\|") == n_cols
    assert "DI \\| syntax" in row and "**reproduced**" in row and v.rule in row
    assert "| -0.2 | [-0.225, -0.175] | -0.01 | -0.19 [-0.215, -0.165] | 3 |" in row
    assert "contradicted" in markdown_row("x", decide([0.3, 0.2], 0.0, direction=-1, margin=0.05))
    text = describe(v)
    assert text.startswith("-0.2 [") and "untrained -0.01" in text and "(3 seeds)" in text
