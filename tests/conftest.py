"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _find_data_dir() -> Path | None:
    env = os.environ.get("JAXDYN_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "ud-english-ewt").is_dir() or (c / "brown").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real corpora folder (``$JAXDYN_DATA_DIR`` or ``../shared/data``); skips if absent."""
    d = _find_data_dir()
    if d is None:
        pytest.skip("real corpora not found: set JAXDYN_DATA_DIR (see README)")
    return d


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's caches of compiled programs after every test module.

    Each XLA:CPU executable keeps its own memory mappings; a single process that
    compiles the whole suite's programs (thousands) passes Linux's default
    ``vm.max_map_count`` (65,530), and the next compilation then crashes with a
    segmentation fault (measured: about 24,000 mappings after two minutes of the
    CD/CKA tests). Modules do not share compiled programs, so this costs nothing.
    """
    yield
    import jax

    jax.clear_caches()


@pytest.fixture
def figures(monkeypatch):
    """Figures the plotting code closes, kept open for inspection (and closed at teardown)."""
    import matplotlib.figure
    import matplotlib.pyplot as plt

    kept, close = [], plt.close
    monkeypatch.setattr(plt, "close", kept.append)
    # no PNG encoding (the study tests check the files): the Axes are what is inspected
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: None)
    yield kept
    close("all")
