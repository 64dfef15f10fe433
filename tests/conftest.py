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
