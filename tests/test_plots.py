"""Every report figure, rendered on small data, meets the plotting standard."""

import types

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from scipy import stats as sps

from jaxdyn.config import ModelConfig  # noqa: F401  (config first: study modules import it)
from jaxdyn.report import check_figure, training_curves
from jaxdyn.report.plots import BAND_KEY, cell_format, seed_band, share_y, style
from jaxdyn.studies.bottom_up import plots as bu_plots
from jaxdyn.studies.bottom_up.config import MEASURES, BottomUpConfig
from jaxdyn.studies.bottom_up.findings import summarise
from jaxdyn.studies.interactions import report as ia_report
from jaxdyn.studies.interactions.findings import correlations
from jaxdyn.studies.similarity import findings as sim_findings
from jaxdyn.studies.similarity import plots as sim_plots
from jaxdyn.studies.sparsity import plots as sp_plots


def _ok(fig):
    assert check_figure(fig) == []
    return fig


def _integer_epochs(ax):
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_check_figure_finds_what_is_missing(figures):
    fig, ax = plt.subplots()
    ax.plot([0, 0.5, 1], [1, 2, 3], color="C0", label="a")
    ax.plot([0, 0.5, 1], [3, 2, 1], "--", color="C0", label="b")
    ax.set_xlabel("epoch")
    problems = check_figure(fig)
    assert any("no y label" in p for p in problems) and any("no title" in p for p in problems)
    assert any("no legend" in p for p in problems) and any("no marker" in p for p in problems)
    assert any("share colour and marker" in p for p in problems)
    assert any("fractional epoch ticks" in p for p in problems)
    plt.close(fig)
    assert len({(style(i)["color"], style(i)["marker"]) for i in range(60)}) == 60


def test_training_curves(tmp_path, figures):
    hist = [
        {"epoch": e, "train_loss": np.nan if e == 0 else 6.0 - e, "valid_loss": 7.0 - e}
        for e in range(3)
    ]
    training_curves(tmp_path / "t.png", hist)
    fig = _ok(figures[-1])
    a, b = fig.axes
    assert a.get_title() and "Perplexity" in b.get_title() and b.get_yscale() == "log"
    labels = [t.get_text() for t in b.get_yticklabels(minor=False) + b.get_yticklabels(minor=True)]
    assert sum(1 for t in labels if t) >= 3  # not only 10^3 and 10^4
    _integer_epochs(a)
    assert len(a.get_lines()[0].get_xdata()) == 2  # no train value at epoch 0


def _traj(epochs=(0, 1, 2), V=30, seed=0):
    rng = np.random.default_rng(seed)
    mods = ("embedding", "lstm_0", "lstm_1", "logits")
    return {
        e: {
            kg: {
                m: {
                    d: {"te": {"count": np.full(V, 5), "mean": rng.uniform(2, 4, V)}}
                    for d in ("act", "act_grad")
                }
                for m in mods
            }
            for kg in ("input", "target")
        }
        for e in epochs
    }, mods


def test_sparsity_figures(tmp_path, figures):
    traj, mods = _traj()
    vocab = types.SimpleNamespace(counts=np.arange(1, 31) ** 2)
    sp_plots.plot_te_vs_frequency(tmp_path / "a.png", traj, vocab, 2, who="seed 1111")
    fig = _ok(figures[-1])
    assert "epoch 2" in fig._suptitle.get_text() and all(ax.get_ylabel() for ax in fig.axes)
    epochs = [0, 1, 2]
    rng = np.random.default_rng(1)
    te = {d: {m: rng.uniform(2, 3, (3, 3)) for m in mods} for d in sp_plots.DIRECTIONS}
    rho = {m: rng.uniform(-0.5, 0.5, (3, 3)) for m in mods}
    sp_plots.plot_over_epochs(tmp_path / "b.png", te, rho, epochs, mods, n_seeds=3)
    fig = _ok(figures[-1])
    assert "95% t-interval across seeds" in fig._suptitle.get_text()
    for ax in fig.axes:
        _integer_epochs(ax)
        assert ax.get_ylabel()
    labels = ["embedding\nactivation", "embedding\ngradient"]
    sp_plots.plot_function_content(
        tmp_path / "c.png", labels, [0.1, -0.2], np.array([0.0, -0.3]), np.array([0.2, -0.1]),
        epoch=2, interval="95% bootstrap interval over word types (1 seed)",
    )  # fmt: skip
    fig = _ok(figures[-1])
    ax = fig.axes[0]
    assert "epoch 2" in ax.get_title()
    assert "95% bootstrap interval" in ax.get_legend().get_texts()[0].get_text()


def _condition(acc_b, acc_f, di, L, repeats, n=3):
    epochs = {}
    for e, (a, b, d) in enumerate(zip(acc_b, acc_f, di)):
        sets = {}
        for s, acc in (("familiar", a), ("fresh", b)):
            m = {k: np.full(n, -1.0 - e) for k in MEASURES}
            m["correct"], m["di_hidden"] = np.full(n, acc), np.full(n, d)
            sets[s] = m
        epochs[e] = sets
    return {"rule_length": L, "familiar_repeats": repeats, "epochs": epochs}


def test_bottom_up_figures(tmp_path, figures):
    cfg = BottomUpConfig(rule_lengths=(2, 4))
    res = {
        "L2-unfamiliar": _condition([0, 0.5, 0.9], [0, 0.3, 0.5], [0.1, 0.2, 0.6], 2, 0),
        "L2-familiar": _condition([0, 0.5, 0.9], [0, 0.3, 0.3], [0.1, 0.2, 3.0], 2, 5),
        "L4-unfamiliar": _condition([0, 0.4, 0.8], [0, 0.2, 0.3], [0.1, 0.1, 0.2], 4, 0),
        "L4-familiar": _condition([0, 0.6, 0.9], [0, 0.3, 0.5], [0.1, 0.3, 0.5], 4, 5),
    }
    summ = summarise(res)
    bu_plots.plot_accuracy(tmp_path / "a.png", res, summ, cfg, last_epoch=2)
    fig = _ok(figures[-1])
    texts = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert "L2, exposed conduits: bank-conduit set" in texts
    assert "L2, bracket-only conduits: fresh-conduit set" in texts
    assert not any("unfamiliar" in t or "familiar set" in t for t in texts)
    keys = ("full_logp", "cd_open", "cd_conduit", "cd_both")
    bu_plots.plot_measures(tmp_path / "b.png", res, summ, keys, "log p", "Log p", last_epoch=2)
    fig = _ok(figures[-1])
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "full model, bank-conduit set" in names and not any("cd_" in n for n in names)
    assert fig.legends[0].get_texts()[0].get_fontsize() >= 7
    bu_plots.plot_measures(tmp_path / "c.png", res, summ, ("di_hidden",), "DI", "DI", last_epoch=2)
    fig = _ok(figures[-1])
    assert len({ax.get_ylim() for ax in fig.axes}) == 1  # one scale: 0.6 vs 3.0 comparable
    assert fig.axes[0].get_ylim()[1] >= 3.0


def test_interactions_figures(tmp_path, figures):
    rng = np.random.default_rng(0)
    n = 240
    cols = {
        "member": np.repeat([0, 1], n // 2),
        "epoch": np.tile(np.repeat([0, 1, 2], n // 6), 2),
        "seq_dist": rng.integers(1, 4, n),
        "syn_dist": rng.integers(1, 6, n),
    }
    cols["di_hidden"] = 0.002 + 0.008 * rng.uniform(size=n)  # 0.002-0.010, as in the issue
    cols["di_logits"] = cols["di_hidden"] * 2
    ia_report.plot_heatmap(tmp_path / "h.png", cols, "di_hidden", 2, 4, who="pooled over 2 seeds")
    fig = _ok(figures[-1])
    ax = fig.axes[0]
    cells = [t.get_text().split("\n")[0] for t in ax.texts]
    assert len(set(cells)) > 3 and not any(c in ("0.00", "0.01") for c in cells)
    assert "epoch 2" in ax.get_title() and fig.axes[1].get_ylabel() == "mean di_hidden"
    assert cell_format([0.002, 0.010]) == ".4f"
    corr = {s: correlations(cols, s) for s in ("di_hidden", "di_logits")}
    ia_report.plot_rho(tmp_path / "r.png", corr, n_seeds=2)
    fig = _ok(figures[-1])
    for ax in fig.axes:
        _integer_epochs(ax)


def _rows(corpus="toy"):
    out = []
    for comp, task, init, other in (
        ("lm-vs-tagger", "pos", "shared", "lm"),
        ("lm-vs-tagger", "pos", "own", "lm"),
        ("lm-vs-tagger", "genre", "shared", "lm"),
        ("vs-own-final", "lm", "-", "final"),
        ("vs-own-final", "pos", "own", "final"),
    ):
        for layer in ("embedding", "lstm_0"):
            for e in (0, 1):
                out.append(dict(corpus=corpus, comparison=comp, task=task, init=init, other=other,
                                layer=layer, metric="svcca", epoch=e, value=0.5 + 0.2 * e))  # fmt: skip
    return out


def test_similarity_figures(tmp_path, figures):
    idx = sim_findings.index(_rows())
    sim_plots.plot_series(tmp_path / "a.png", idx, "toy", "lm-vs-tagger", ("svcca",), "toy: LM")
    fig = _ok(figures[-1])
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "pos tagger, shared init" in names and "pos tagger, own init" in names
    sim_plots.plot_series(tmp_path / "b.png", idx, "toy", "vs-own-final", ("svcca",), "toy: final")
    fig = _ok(figures[-1])
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "language model" in names and not any("(-)" in n for n in names)
    for ax in fig.axes:
        _integer_epochs(ax)  # two checkpoints: no 0.25 / 0.5 ticks
    probes = [
        {"corpus": "toy", "task": t, "layer": lay, "epoch": e, "test_acc": 0.3 + 0.1 * e,
         "majority": 0.2}
        for t in ("pos", "genre") for lay in ("embedding", "lstm_0") for e in (0, 1)
    ]  # fmt: skip
    sim_plots.plot_probes(tmp_path / "c.png", probes, "toy")
    fig = _ok(figures[-1])
    assert "epochs 0-1" in fig._suptitle.get_text()


def test_share_y_uses_the_union_of_the_panels():
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], [0, 0.6])
    b.plot([0, 1], [0, 3.0])
    share_y([a, b])
    assert a.get_ylim() == b.get_ylim() and a.get_ylim()[1] >= 3.0
    plt.close(fig)


# --- populations: the mean over seeds with a 95% t-interval band; one seed: no band ---


def _bands(ax):
    """The shaded seed bands of a panel (not the empty legend key)."""
    return [
        c
        for c in ax.collections
        if isinstance(c, PolyCollection) and c.get_paths() and c.get_gid() != BAND_KEY
    ]


def _assert_band(c, x, curves, f=lambda v: v, clip=None):
    """At every x the band spans the 95% Student-t interval of ``curves[:, k]`` (scipy)."""
    curves = np.asarray(curves, np.float64)
    n = curves.shape[0]
    half = sps.t.ppf(0.975, n - 1) * curves.std(0, ddof=1) / np.sqrt(n)
    lo, hi = f(curves.mean(0) - half), f(curves.mean(0) + half)
    if clip is not None:
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    v = np.concatenate([p.vertices for p in c.get_paths()])
    for k, xk in enumerate(x):
        ys = v[np.isclose(v[:, 0], xk), 1]
        np.testing.assert_allclose([ys.min(), ys.max()], [lo[k], hi[k]], rtol=1e-9, atol=1e-12)


def _band_named(fig, n):
    texts = [
        t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
    ]
    texts += [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert f"shaded: 95% t-interval across seeds ({n} seeds)" in texts, texts


def test_seed_band_and_an_unnamed_band(figures):
    c = np.array([[1.0, 2.0, 3.0], [1.5, np.nan, 3.5], [0.5, 2.5, 2.5]])
    mean, lo, hi = seed_band(c)
    assert mean[0] == pytest.approx(1.0) and np.isnan(mean[1])  # a failed seed: no mean there
    assert np.isnan(lo[1]) and np.isnan(hi[1]) and np.all(np.isfinite(hi[[0, 2]]))
    assert seed_band(c[:1])[1:] == (None, None)
    with pytest.raises(ValueError, match="seeds, x"):
        seed_band(np.ones((2, 2, 2)))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 2], label="a", **style(0))
    ax.fill_between([0, 1], [0, 1], [2, 3])
    ax.set(xlabel="x", ylabel="y", title="t")
    assert any("shaded band" in p for p in check_figure(fig))


def test_training_curves_of_a_population(tmp_path, figures):
    rng = np.random.default_rng(3)
    valid = 7.0 - np.arange(3) + rng.normal(0, 0.2, (3, 3))
    hist = [
        {"member": m, "epoch": e, "train_loss": np.nan if e == 0 else 6.0 - e + 0.1 * m,
         "valid_loss": valid[m, e]}
        for m in range(3) for e in range(3)
    ]  # fmt: skip
    training_curves(tmp_path / "t.png", hist)
    fig = _ok(figures[-1])
    a, b = fig.axes
    assert "mean of 3 seeds" in a.get_title() and len(_bands(a)) == len(_bands(b)) == 2
    _band_named(fig, 3)
    _assert_band(_bands(a)[1], range(3), valid)
    _assert_band(_bands(b)[1], range(3), valid, f=np.exp)  # perplexity: exp of the interval
    training_curves(tmp_path / "t1.png", [r for r in hist if r["member"] == 0])
    assert not any(_bands(ax) for ax in _ok(figures[-1]).axes)


def test_sparsity_and_interactions_bands(tmp_path, figures):
    _, mods = _traj()
    rng = np.random.default_rng(4)
    te = {d: {m: rng.uniform(2, 3, (3, 3)) for m in mods} for d in sp_plots.DIRECTIONS}
    rho = {m: rng.uniform(-0.9, 0.9, (3, 3)) for m in mods}
    sp_plots.plot_over_epochs(tmp_path / "b.png", te, rho, [0, 1, 2], mods, n_seeds=3)
    fig = _ok(figures[-1])
    assert [len(_bands(ax)) for ax in fig.axes] == [4, 4, 4]
    _assert_band(_bands(fig.axes[2])[1], range(3), rho[mods[1]], clip=(-1, 1))
    c = te["act"][mods[0]]
    _assert_band(_bands(fig.axes[0])[0], range(3), c / c[:, :1])
    one = {d: {m: v[:1] for m, v in te[d].items()} for d in te}
    sp_plots.plot_over_epochs(tmp_path / "c.png", one, {m: v[:1] for m, v in rho.items()},
                              [0, 1, 2], mods, n_seeds=1)  # fmt: skip
    assert not any(_bands(ax) for ax in _ok(figures[-1]).axes)
    n = 360
    cols = {
        "member": np.repeat([0, 1, 2], n // 3),
        "epoch": np.tile(np.repeat([0, 1, 2], n // 9), 3),
        "seq_dist": rng.integers(1, 3, n),
        "syn_dist": rng.integers(1, 6, n),
        "di_hidden": rng.uniform(size=n),
    }
    corr = correlations(cols, "di_hidden")
    ia_report.plot_rho(tmp_path / "r.png", {"di_hidden": corr}, n_seeds=3)
    fig = _ok(figures[-1])
    per = [[r["rho"] for r in corr if r["seq_dist"] == 1 and r["member"] == m] for m in range(3)]
    _assert_band(_bands(fig.axes[0])[0], range(3), per, clip=(-1, 1))
    _band_named(fig, 3)


def test_bottom_up_figures_of_a_population(tmp_path, figures):
    cfg = BottomUpConfig(rule_lengths=(2,))
    seeds = []
    for k in range(3):
        res = {
            "L2-unfamiliar": _condition([0, 0.5, 0.8 + 0.05 * k], [0, 0.3, 0.5], [0.1, 0.2, 0.6],
                                        2, 0),
            "L2-familiar": _condition([0, 0.4 + 0.1 * k, 0.9], [0, 0.3, 0.3], [0.1, 0.2, k], 2, 5),
        }  # fmt: skip
        seeds.append(summarise(res))
    bu_plots.plot_accuracy(tmp_path / "a.png", res, seeds, cfg, last_epoch=2)
    fig = _ok(figures[-1])
    ax = fig.axes[0]
    assert len(_bands(ax)) == 4 and "mean of 3 seeds" in fig._suptitle.get_text()
    _band_named(fig, 3)
    _assert_band(_bands(ax)[0], range(3), [[0, 0.5, 0.8 + 0.05 * k] for k in range(3)], clip=(0, 1))
    bu_plots.plot_measures(tmp_path / "c.png", res, seeds, ("di_hidden",), "DI", "DI", last_epoch=2)
    fig = _ok(figures[-1])
    _band_named(fig, 3)
    _assert_band(_bands(fig.axes[1])[0], range(3), [[0.1, 0.2, k] for k in range(3)])
    bu_plots.plot_measures(tmp_path / "d.png", res, seeds[:1], ("di_hidden",), "DI", "DI",
                           last_epoch=2)  # fmt: skip
    assert not any(_bands(ax) for ax in _ok(figures[-1]).axes)


def test_attention_figure_of_a_population(tmp_path, figures):
    from jaxdyn.studies.attention.findings import findings, uas_curves
    from jaxdyn.studies.attention.report import plot_uas

    rng = np.random.default_rng(6)
    trajs = {
        m: [
            {"epoch": e, "step": 5 * e, "layers": {
                layer: {"either": (c := rng.integers(0, 20, 3) + 10 * e), "dep_to_head": c,
                        "head_to_dep": 0 * c} for layer in (0, 1)}}
            for e in range(3)
        ]
        for m in range(3)
    }  # fmt: skip
    f = findings(trajs, 40, 0.2, seeds=[1, 2, 3], min_effect=0.05)
    plot_uas(tmp_path / "u.png", f, 3)
    fig = _ok(figures[-1])
    ax = fig.axes[0]
    assert len(_bands(ax)) == 2 and "mean of 3 seeds" in ax.get_title()
    _band_named(fig, 3)
    _assert_band(_bands(ax)[1], range(3), uas_curves(f, 1), clip=(0, 1))
    _integer_epochs(ax)
    f1 = findings({0: trajs[0]}, 40, 0.2, seeds=[1], min_effect=0.05)
    plot_uas(tmp_path / "u1.png", f1, 1)
    fig = _ok(figures[-1])
    assert not _bands(fig.axes[0]) and "1 seed" in fig.axes[0].get_title()


def test_phases_figures(tmp_path, figures):
    from jaxdyn.studies.phases import plots as ph_plots

    steps = np.array([0, 10, 20, 40, 80, 160])
    states = np.array([[0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 2], [0, 0, 0, 1, 1, 2]])
    loss = 5.0 - np.log1p(steps)[None] + 0.1 * np.arange(3)[:, None]
    ph_plots.phases_on_loss(tmp_path / "l.png", steps, loss, states, [1111, 1112, 1113])
    fig = _ok(figures[-1])
    assert len(fig.axes) == 3  # every seed its own panel (states differ per seed)
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["seed 1111", "seed 1112",
                                                                 "seed 1113"]  # fmt: skip
    tm = np.array([[0.5, 0.5, 0.0], [0.0, 0.6, 0.4], [0.0, 0.0, 1.0]])
    ph_plots.transition_graph(tmp_path / "g.png", tm, {(0, 1): 3, (1, 2): 3})
    _ok(figures[-1])
    means = {k: np.linspace(-1, 1, 5) * (k - 1) for k in range(3)}
    ph_plots.state_means(tmp_path / "m.png", means, [f"metric {i}" for i in range(5)])
    _ok(figures[-1])
