"""A run folder's config: what may resume it, and reading it back.

A run folder holds ``config.json`` (the latest invocation's whole tree) and the
checkpoints. Resuming compares only the training keys (``jaxdyn.config.TRAINING_KEYS``),
with defaults filled in for keys added since the file was written; ``epochs`` may grow
(extending a run) and ``data.data_dir`` may move.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax

from jaxdyn.checkpoint import CheckpointError, Trajectory
from jaxdyn.config import TRAINING_KEYS, ConfigError, RunConfig

#: Training keys that may differ when a run is resumed: ``epochs`` (extend a run).
EXTENSIBLE_KEYS = ("epochs",)


def training_part(d: dict) -> dict:
    """The training keys of a (possibly older) config dict, defaults filled in."""
    d = {k: v for k, v in d.items() if k in TRAINING_KEYS}
    try:  # fills fields added since the file was written with their defaults
        d = RunConfig.from_dict(d).training_dict()
    except (TypeError, ValueError):
        pass
    d = json.loads(json.dumps(d))
    d.get("data", {}).pop("data_dir", None)  # where the corpus lives may change between sessions
    for k in EXTENSIBLE_KEYS:
        d.pop(k, None)
    return d


def _differences(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ between two nested dicts: ``(key, a, b)``."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_differences(va, vb, f"{prefix}{k}."))
        elif va != vb:
            out.append((prefix + k, va, vb))
    return out


def config_differences(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """Training keys (dotted) that differ between a run's config and a new one.

    ``epochs`` (:data:`EXTENSIBLE_KEYS`) and ``data.data_dir`` are not compared.
    """
    return _differences(training_part(old), training_part(new))


def check_same_config(workdir: Path, cfg: RunConfig, has_checkpoints: bool) -> None:
    """Refuse to resume ``workdir`` with other training keys (ConfigError naming them),
    then record ``cfg`` as the run's ``config.json`` (first process only)."""
    path = workdir / "config.json"
    if path.exists() and has_checkpoints:
        diff = config_differences(json.loads(path.read_text()), cfg.training_dict())
        if diff:
            shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in diff[:5])
            more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
            raise ConfigError(
                f"{workdir} holds a run with a different config ({path}): {shown}{more}; "
                "use another --workdir, or delete it to start over"
            )
    # the latest invocation's whole tree (study sections may change freely), written
    # atomically by the first process only (all of them read it in a multi-process run)
    if jax.process_index() == 0:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
        tmp.replace(path)


def load_run(workdir: str | Path) -> tuple[RunConfig, list[int]]:
    """Config and valid checkpoint steps of a finished or running run."""
    workdir = Path(workdir)
    cfg = RunConfig.from_dict(json.loads((workdir / "config.json").read_text()))
    with Trajectory(workdir, read_only=True) as traj:
        steps = traj.valid_steps()
    if not steps:
        raise CheckpointError(f"no intact checkpoints under {workdir}")
    return cfg, steps
