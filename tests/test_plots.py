"""Every report figure, rendered on small data, meets the plotting standard."""

import types

import matplotlib
import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest

from jaxdyn.config import ModelConfig  # noqa: F401  (config first: study modules import it)
from jaxdyn.report import check_figure, training_curves
from jaxdyn.report.plots import cell_format, share_y, style
from jaxdyn.studies.bottom_up import plots as bu_plots
from jaxdyn.studies.bottom_up.config import MEASURES, BottomUpConfig
from jaxdyn.studies.bottom_up.findings import summarise
from jaxdyn.studies.interactions import report as ia_report
from jaxdyn.studies.interactions.findings import correlations
from jaxdyn.studies.similarity import findings as sim_findings
from jaxdyn.studies.similarity import plots as sim_plots
from jaxdyn.studies.sparsity import plots as sp_plots


@pytest.fixture
def figures(monkeypatch):
    """Figures the plotting code closes, kept open for inspection."""
    kept, close = [], plt.close
    monkeypatch.setattr(plt, "close", kept.append)
    # no PNG encoding (the study tests check the files): the Axes are what is inspected
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: None)
    yield kept
    close("all")


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
