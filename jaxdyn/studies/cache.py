"""Stage cache and input validation of ``jaxdyn run`` (used by :mod:`jaxdyn.studies.run`).

**Cache.** Each analysis stage's outputs (its folder and report sections) are
keyed by its inputs; ``workdir/cache/<stage>.json`` records the key of the
last successful run. The key has three parts, each a SHA-256 digest:

- ``config``: the stage's config section (``cfg.<stage>``), plus the run's
  ``epochs``/``seed``/``seeds`` when the section inherits them (a ``None``
  ``epochs``, ``seed`` or ``seeds`` anywhere in it), plus the corpora folder;
- ``checkpoints``: the run's checkpoint manifests (the SHA-256 of every
  checkpoint file, ``jaxdyn.checkpoint``) and training config, for stages that
  analyse the run's own model (every stage except those in :data:`OWN_MODELS`,
  which train models of their own inside their folder);
- ``code``: the source of the installed ``jaxdyn`` package.

A rerun whose key matches, with the stage's report sections still present,
skips the stage (it prints ``cached``); otherwise the stage runs and the message
names which parts changed. ``train`` is never cached: a finished run resumes
instantly and an extended one (``--epochs`` larger) trains on.

**Validation.** :func:`validate_inputs` checks, before any training, that the
corpora folder holds what the requested stages read, naming every missing file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Stages that train their own models (inside their own folder) instead of
#: analysing the run's checkpoints.
OWN_MODELS = frozenset({"interactions", "bottom_up", "similarity"})


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the path and content of every ``.py`` file of the ``jaxdyn`` package."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _inherits(section: Any) -> bool:
    """Whether a section dict has ``epochs``/``seed``/``seeds`` left ``None`` (following
    the run's)."""
    if isinstance(section, dict):
        return any(
            (k in ("epochs", "seed", "seeds") and v is None) or _inherits(v)
            for k, v in section.items()
        )
    return False


def checkpoints_digest(workdir: Path) -> str:
    """SHA-256 of a run's manifests (each names every checkpoint file's SHA-256)."""
    d = Path(workdir) / "manifests"
    files = sorted(d.glob("*.json")) if d.is_dir() else []
    return _digest([(p.name, p.read_text()) for p in files])


def stage_key(cfg, name: str, workdir: Path, data_dir: Path | None) -> dict[str, str]:
    """The cache key of stage ``name``: ``{"config", "checkpoints", "code"}`` digests."""
    tree = cfg.to_dict()
    section = tree.get(name)
    config = {"section": section, "data_dir": None if data_dir is None else str(data_dir)}
    if section is None or _inherits(section):
        config.update(epochs=cfg.epochs, seed=cfg.seed, seeds=cfg.seeds)
    key = {"config": _digest(config), "code": code_digest()}
    if name not in OWN_MODELS:
        from jaxdyn.train.run_folder import training_part

        training = training_part(cfg.training_dict())
        key["checkpoints"] = _digest([checkpoints_digest(workdir), training])
    else:
        key["checkpoints"] = ""
    return key


def _record_path(workdir: Path, name: str) -> Path:
    return Path(workdir) / "cache" / f"{name}.json"


def sections_snapshot(workdir: Path) -> dict[str, int]:
    """``{section file name: modification time (ns)}`` of a run's report sections."""
    d = Path(workdir) / "report" / "sections"
    return {p.name: p.stat().st_mtime_ns for p in d.glob("*.md")} if d.is_dir() else {}


def written_since(workdir: Path, before: dict[str, int]) -> list[str]:
    """Section files written (new or changed) since ``before`` (:func:`sections_snapshot`)."""
    return sorted(k for k, t in sections_snapshot(workdir).items() if before.get(k) != t)


def _sections_of(workdir: Path, rec: dict) -> list[Path]:
    d = Path(workdir) / "report" / "sections"
    return [d / n for n in rec.get("sections", [])]


def lookup(workdir: Path, name: str, key: dict[str, str]) -> tuple[bool, str]:
    """``(hit, why)``: whether stage ``name`` may be skipped, and a short reason."""
    path = _record_path(workdir, name)
    if not path.exists():
        return False, "no cached result"
    try:
        rec = json.loads(path.read_text())
    except ValueError:
        return False, f"unreadable cache record {path}"
    changed = [k for k in ("config", "checkpoints", "code") if rec.get("key", {}).get(k) != key[k]]
    if changed:
        what = {"config": f"its config ({name}.*)", "checkpoints": "the run's checkpoints"}
        return False, "changed: " + ", ".join(what.get(k, "jaxdyn's code") for k in changed)
    sections = _sections_of(workdir, rec)
    if not sections or not all(p.exists() for p in sections):
        return False, "its report section is missing"
    return True, f"inputs unchanged since {rec.get('written', '?')}"


def record(workdir: Path, name: str, key: dict[str, str], sections: Sequence[str]) -> None:
    """Remember that stage ``name`` finished with inputs ``key``, writing ``sections``."""
    path = _record_path(workdir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {"stage": name, "key": key, "written": now, "sections": list(sections)}, indent=1
        )
    )
    tmp.replace(path)


def mark_current(workdir: Path, name: str) -> None:
    """A cached stage's sections are current: stamp them as confirmed by this invocation.

    Their metadata (``<section>.json``, ``jaxdyn.report``) keeps ``computed_ts``
    (when the stage last ran) and gets ``written_ts`` = now and ``cached: true``,
    so the report does not mark them as left over from an earlier invocation.
    """
    rec = json.loads(_record_path(workdir, name).read_text())
    now = time.time()
    for sec in _sections_of(workdir, rec):
        meta_path = sec.with_suffix(".json")
        if not meta_path.exists():
            os.utime(sec)  # an older section without metadata: its mtime is its date
            continue
        meta = json.loads(meta_path.read_text())
        meta.setdefault("computed_ts", meta.get("written_ts"))
        meta["written_ts"] = now
        meta["cached"] = True
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(meta_path)


def _corpus_files(corpus: str, data_dir: Path) -> list[Path]:
    """The files corpus ``corpus`` needs under ``data_dir`` that are not there."""
    from jaxdyn.data.corpora import EWT_FILES

    if corpus == "ewt":
        root = data_dir / "ud-english-ewt"
        if not root.is_dir() and (data_dir / EWT_FILES["train"]).is_file():
            root = data_dir
        return [root / f for f in EWT_FILES.values() if not (root / f).is_file()]
    if corpus == "brown":
        root = data_dir / "brown"
        if not root.is_dir() and (data_dir / "cats.txt").is_file():
            root = data_dir
        return [] if (root / "cats.txt").is_file() else [root / "cats.txt"]
    return []


def stage_corpora(cfg, name: str) -> list[str]:
    """Corpora (``ewt``, ``brown``) stage ``name`` reads from the corpora folder when given."""
    if name in ("sparsity", "interactions"):  # gold POS / dependency heads from EWT
        return ["ewt"]
    if name == "similarity":
        return [c for c in cfg.similarity.corpora if c in ("ewt", "brown")]
    if name == "attention" and cfg.model.kind == "transformer":  # gold dependency heads
        return ["ewt"]
    return []


def validate_inputs(cfg, names: Sequence[str], data_dir: Path | None) -> None:
    """Fail before any training when the corpora folder lacks what the stages read.

    Checks the run's own corpus (``data.corpus`` ``ewt``/``brown``) and, when a
    corpora folder is given, every requested stage's corpora (:func:`stage_corpora`),
    and ``interactions.eval_path``.

    Raises:
      CorpusNotFoundError: naming every missing file and the stages that need it.
    """
    from jaxdyn.data.paths import _LAYOUT_HELP, CorpusNotFoundError

    need: dict[str, list[str]] = {}
    if cfg.data.corpus in ("ewt", "brown") and "train" in names:
        need.setdefault(cfg.data.corpus, []).append("train")
    if data_dir is not None:
        for name in names:
            for corpus in stage_corpora(cfg, name):
                need.setdefault(corpus, []).append(name)
    problems = []
    if need and data_dir is None:
        problems.append(f"corpora {sorted(need)} need --data-dir (or $JAXDYN_DATA_DIR)")
    elif need:
        for corpus, stages in need.items():
            missing = _corpus_files(corpus, Path(data_dir))
            if missing:
                shown = ", ".join(str(p) for p in missing)
                problems.append(f"{corpus} (for stages {', '.join(stages)}): missing {shown}")
    eval_path = cfg.interactions.eval_path
    if "interactions" in names and eval_path and not Path(eval_path).is_file():
        problems.append(f"interactions.eval_path: {eval_path}: file not found")
    if problems:
        where = f"--data-dir {data_dir}" if data_dir is not None else "the run"
        raise CorpusNotFoundError(
            f"{where} lacks what the requested stages read (nothing was trained): "
            + "; ".join(problems)
            + "\n"
            + _LAYOUT_HELP
        )
