import numpy as np
import pytest
from scipy import stats as sps

from jaxdyn.studies.stats import matched_difference, rankdata, spearman, word_classes


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for n in (5, 30, 400):
        x = rng.integers(0, 6, n).astype(float)
        y = x + rng.normal(size=n)
        rho, p = spearman(x, y)
        ref = sps.spearmanr(x, y)
        assert rho == pytest.approx(ref.statistic, abs=1e-12)
        assert p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    np.testing.assert_array_equal(rankdata([3, 1, 3, 2]), sps.rankdata([3, 1, 3, 2]))
    assert np.isnan(spearman([1, 2, 3], [1, 2, 3])[0])
    assert np.isnan(spearman([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])[0])


def test_matched_difference_removes_frequency_confound():
    rng = np.random.default_rng(1)
    n = 400
    logf = rng.uniform(0, 8, n)
    group = (rng.uniform(size=n) < np.clip(logf / 8, 0.05, 0.95)).astype(int)  # A is more frequent
    value = 5.0 - 0.3 * logf + rng.normal(scale=0.05, size=n)  # depends on frequency only
    naive = value[group == 1].mean() - value[group == 0].mean()
    r = matched_difference(value, logf, group, bins=10, n_boot=200)
    assert naive < -0.3
    assert abs(r["diff"]) < 0.1 and r["lo"] < r["diff"] < r["hi"]
    fast = matched_difference(value, logf, group, bins=10, n_boot=0)  # no interval
    assert fast["diff"] == r["diff"] and np.isnan(fast["lo"]) and np.isnan(fast["hi"])
    r2 = matched_difference(value - 0.5 * group, logf, group, bins=10, n_boot=200)
    assert r2["hi"] < -0.3
    empty = matched_difference(value, logf, np.full(n, -1))
    assert np.isnan(empty["diff"]) and empty["bins"] == 0


def test_matched_difference_single_frequency_and_nan_values():
    # every type has the same frequency: one bin, the plain difference of means
    value = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    group = np.array([1, 1, 1, 0, 0, 0])
    r = matched_difference(value, np.ones(6), group, n_boot=50)
    assert r["bins"] == 1 and r["diff"] == pytest.approx(-3.0)
    assert r["lo"] <= r["diff"] <= r["hi"]
    # non-finite values or frequencies are left out, like spearman does
    logf = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 2.0, np.nan])
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan, 9.0])
    g = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    r = matched_difference(v, logf, g, n_boot=50)
    assert r["diff"] == pytest.approx(-3.0) and np.isfinite(r["lo"]) and np.isfinite(r["hi"])
    assert r["n_a"] == 3 and r["n_b"] == 3
    with pytest.raises(ValueError, match="same length"):
        matched_difference(v, logf[:-1], g)
    with pytest.raises(ValueError, match="same length"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])


def test_word_classes_majority_tag():
    sents = [(["the", "run", "run", "of"], ["DT", "NN", "VB", "IN"]), (["run", "!"], ["VB", "."])]
    c = word_classes(sents)
    assert c == {"the": "function", "run": "content", "of": "function"}
