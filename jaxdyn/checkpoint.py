"""A trajectory of checkpoints (Orbax) with metadata, integrity checks and exact resume.

Layout under ``directory``::

    ckpt/<step>/state, ckpt/<step>/meta   Orbax checkpoint (state pytree + JSON metadata)
    manifests/<step>.json                 SHA-256 of every file of that checkpoint

Orbax writes each checkpoint to a temporary folder and renames it when complete,
so a crash mid-save leaves no folder that looks finished. jaxdyn adds a manifest,
written only after Orbax has finished: a checkpoint without a manifest is
*incomplete*, one whose files no longer match is *corrupt*. Neither is ever
restored: :meth:`Trajectory.restore` raises :class:`CheckpointError` naming the
step and the problem, and the older checkpoints stay usable. All checkpoints are
kept unless the run's retention rule demotes one (:meth:`Trajectory.demote`).

Parameters-only checkpoints (:meth:`Trajectory.save_params`, metadata ``kind``
``"params"``) hold the parameters and the metadata only: light checkpoints for
dense schedules (``jaxdyn.train.schedule``), read back like any other by
:meth:`Trajectory.iter_params`; training resumes from the newest *full* one
(:meth:`Trajectory.latest_full_step`).

Reading a trajectory back for analysis (:meth:`Trajectory.iter_params`) restores
only the parameters and the metadata of each checkpoint, not the optimizer
state, and hashes each file once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

#: ``meta["kind"]`` of a parameters-only checkpoint.
PARAMS_KIND = "params"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt."""


def _hash_file(path: Path) -> str:
    """SHA-256 hex digest of one file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digest_dir(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): _hash_file(f)
        for f in sorted(p for p in path.rglob("*") if p.is_file())
    }


class Trajectory:
    """All checkpoints of one training run.

    Args:
      directory: run folder; checkpoints go to ``directory/ckpt``.
      read_only: open without creating anything (for analysis of finished runs).
    """

    def __init__(self, directory: str | Path, *, read_only: bool = False):
        self.directory = Path(directory).absolute()
        self._manifests = self.directory / "manifests"
        if not read_only:
            self._manifests.mkdir(parents=True, exist_ok=True)
        elif not (self.directory / "ckpt").is_dir():
            raise CheckpointError(f"no checkpoints under {self.directory}")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None, create=not read_only, enable_async_checkpointing=False
        )
        self._mngr = ocp.CheckpointManager(self.directory / "ckpt", options=options)

    def close(self) -> None:
        """Release Orbax resources."""
        self._mngr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing -------------------------------------------------------------
    def save(self, state: Any, meta: dict[str, Any]) -> int:
        """Save ``state`` (any pytree with an int ``step`` field) and JSON ``meta``.

        ``step`` may be a population's ``(P,)`` array of equal steps (one
        checkpoint holds every member). Returns the step. Saving a step that
        already exists intact is a no-op; a corrupt or incomplete checkpoint at
        that step is replaced.
        """
        step = _step_number(state.step)
        if self._finished(step):
            if self.check(step) is None and self._read_meta(step).get("kind") != PARAMS_KIND:
                return step
            self._delete(step)
        meta = {**meta, "step": step}
        return self._write(step, state, meta)

    def _write(self, step: int, item: Any, meta: dict[str, Any]) -> int:
        self._mngr.save(  # force: an older step may follow a newer one (resume, demote)
            step,
            force=True,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(item), meta=ocp.args.JsonSave(meta)
            ),
        )
        self._mngr.wait_until_finished()
        self._write_manifest(step)
        return step

    def save_params(self, params: Any, step: int, meta: dict[str, Any]) -> int:
        """Save a parameters-only checkpoint of ``params`` at ``step`` (``meta["kind"]`` is
        set to ``"params"``). A checkpoint already intact at ``step`` (of any kind) is kept.

        Args:
          params: the parameter pytree (a population's with its leading member axis).
          step: the optimizer step.
          meta: JSON metadata (epoch, chunk, ...).
        """
        step = int(step)
        if self._finished(step):
            if self.check(step) is None:
                return step
            self._delete(step)
        meta = {**meta, "step": step, "kind": PARAMS_KIND}
        item = {"params": params, "step": np.asarray(step, np.int32)}
        return self._write(step, item, meta)

    def demote(self, step: int, target_params: Any) -> None:
        """Replace the full checkpoint at ``step`` by a parameters-only one (same parameters
        and metadata; the optimizer state is dropped). A retention rule's tool.

        Args:
          step: an intact full checkpoint.
          target_params: as in :meth:`restore_params`.
        """
        meta = self.restore_meta(step)
        if meta.get("kind") == PARAMS_KIND:
            return
        with Trajectory(self.directory, read_only=True) as reader:  # a manager that has only
            params = reader._read_params(step, target_params)  # saved cannot restore partially
        self._delete(step)
        self.save_params(params, step, {**meta, "demoted_from": meta.get("kind")})

    def demote_all(self, steps: Iterable[int], target_params: Any) -> None:
        """Demote the ``steps`` checkpoints of kind ``steps`` (a retention rule's
        candidates), newest first, stopping at the first one already parameters-only
        (older ones were demoted by earlier calls). Other kinds are left alone."""
        for step in sorted(steps, reverse=True):
            if not self._finished(step):
                continue
            kind = self._read_meta(step).get("kind")
            if kind == PARAMS_KIND:
                break
            if kind == "steps":
                self.demote(step, target_params)

    def _delete(self, step: int) -> None:
        if step not in self._mngr.all_steps():  # written after this manager last looked
            self._mngr.reload()
        self._mngr.delete(step)
        (self._manifests / f"{step}.json").unlink(missing_ok=True)

    def _write_manifest(self, step: int) -> None:
        # multi-process runs (jax.distributed): Orbax has every process write its shards;
        # the first process writes the manifest once all have finished, the others wait
        if jax.process_index() == 0:
            files = _digest_dir(self._step_dir(step))
            tmp = self._manifests / f"{step}.json.tmp"
            tmp.write_text(json.dumps({"step": step, "files": files}, indent=1))
            tmp.replace(self._manifests / f"{step}.json")
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"jaxdyn manifest {self.directory} {step}")

    # -- reading -------------------------------------------------------------
    def _step_dir(self, step: int) -> Path:
        return Path(self._mngr.directory) / str(step)

    def _finished(self, step: int) -> bool:
        """Whether Orbax finalised ``step``: it writes into a temporary folder and renames
        it to ``<step>`` when complete. A directory test, not a rescan of every checkpoint
        (:meth:`all_steps` costs O(checkpoints); dense schedules save thousands)."""
        return self._step_dir(step).is_dir()

    def all_steps(self) -> list[int]:
        """Steps Orbax considers finalised (verified or not), ascending."""
        self._mngr.reload()
        return sorted(self._mngr.all_steps())

    def check(self, step: int) -> str | None:
        """None if checkpoint ``step`` is complete and intact, else what is wrong."""
        if not self._finished(step):
            return "missing (not a finished Orbax checkpoint)"
        mf = self._manifests / f"{step}.json"
        if not mf.exists():
            return "incomplete (no manifest: the save did not finish)"
        try:
            expected = json.loads(mf.read_text())["files"]
        except (OSError, ValueError, KeyError) as e:
            return f"corrupt manifest {mf}: {e}"
        actual = _digest_dir(self._step_dir(step))
        if actual != expected:
            bad = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
            return f"corrupt: files differ from the manifest: {bad[:5]}"
        return None

    def valid_steps(self) -> list[int]:
        """Steps whose checkpoint is complete and intact, ascending."""
        return [s for s in self.all_steps() if self.check(s) is None]

    def latest_step(self) -> int | None:
        """The newest finished step (verified or not), or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def latest_full_step(self) -> int | None:
        """The newest finished step that is not parameters-only (what training resumes
        from), or None. A checkpoint whose metadata cannot be read counts as full (so
        that resuming names its problem instead of skipping it)."""
        for step in reversed(self.all_steps()):
            try:
                if self._read_meta(step).get("kind") != PARAMS_KIND:
                    return step
            except Exception:  # unreadable: let restore() report it
                return step
        return None

    def kinds(self) -> list[tuple[int, str]]:
        """``(step, kind)`` of every intact checkpoint, ascending."""
        return [(s, str(self._read_meta(s).get("kind"))) for s in self.valid_steps()]

    def _verify(self, step: int) -> None:
        problem = self.check(step)
        if problem is not None:
            older = [s for s in self.valid_steps() if s < step]
            hint = (
                f"; newest intact older checkpoint: step {older[-1]} (delete "
                f"{self._step_dir(step)} to resume training from it)"
                if older
                else ""
            )
            raise CheckpointError(f"checkpoint step {step} in {self.directory}: {problem}{hint}")

    def restore_meta(self, step: int) -> dict[str, Any]:
        """The JSON metadata of a verified checkpoint."""
        self._verify(step)
        return self._read_meta(step)

    def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
        """Restore ``(state, meta)`` of a verified checkpoint.

        Args:
          step: which checkpoint.
          target: a pytree with the state's structure, shapes and dtypes (e.g. a
            freshly initialised state); the restored state has the same type.

        Raises:
          CheckpointError: missing, incomplete or corrupt checkpoint.
        """
        self._verify(step)
        if self._read_meta(step).get("kind") == PARAMS_KIND:
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} holds parameters only "
                "(checkpoint.kind=params): training resumes from a full checkpoint "
                f"(newest: step {self.latest_full_step()})"
            )
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        try:
            out = self._mngr.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # Orbax raises many types; give one clear error
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} failed to load: {e}"
            ) from e
        state = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(target), jax.tree_util.tree_leaves(out["state"])
        )
        return state, dict(out["meta"])

    def restore_params(self, step: int, target_params: Any) -> Any:
        """Only the parameters of a verified checkpoint (the optimizer state is not read).

        Args:
          step: which checkpoint.
          target_params: a pytree with the parameters' structure, shapes and
            dtypes (arrays or ``jax.ShapeDtypeStruct``, e.g. from ``jax.eval_shape``).
        """
        self._verify(step)
        return self._read_params(step, target_params)

    def iter_params(
        self,
        target_params: Any,
        *,
        steps: Iterable[int] | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Iterator[tuple[int, Any, dict[str, Any]]]:
        """Yield ``(step, params, meta)`` of every intact checkpoint, ascending.

        Each checkpoint's files are hashed once (against its manifest); only its
        metadata and parameters are read. Incomplete or corrupt checkpoints are
        skipped (:meth:`check` says why).

        Args:
          target_params: as in :meth:`restore_params`.
          steps: only these steps.
          where: only checkpoints whose metadata passes this test (read before
            the parameters, so skipped ones cost only the hashing).
        """
        wanted = None if steps is None else set(steps)
        for step in self.all_steps():
            if (wanted is not None and step not in wanted) or self.check(step) is not None:
                continue
            meta = self._read_meta(step)
            if where is not None and not where(meta):
                continue
            yield step, self._read_params(step, target_params), meta

    def _read_meta(self, step: int) -> dict[str, Any]:
        out = self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def _read_params(self, step: int, target_params: Any) -> Any:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = {
            "params": jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), target_params
            )
        }
        restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
        try:
            out = self._mngr.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeRestore(
                        item=abstract, restore_args=restore_args, partial_restore=True
                    )
                ),
            )
        except Exception as e:  # Orbax raises many types; give one clear error
            raise CheckpointError(
                f"parameters of checkpoint step {step} in {self.directory} failed to load: {e}"
            ) from e
        return jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(target_params),
            jax.tree_util.tree_leaves(out["state"]["params"]),
        )


def _step_number(step: Any) -> int:
    """The checkpoint number of a state's ``step`` (a scalar, or a population's equal steps)."""
    if isinstance(step, jax.Array) and not step.is_fully_addressable:  # multi-process
        s = np.concatenate([np.asarray(sh.data).reshape(-1) for sh in step.addressable_shards])
    else:
        s = np.asarray(jax.device_get(step)).reshape(-1)
    if s.size == 0 or (s != s[0]).any():
        raise ValueError(f"cannot checkpoint members at different steps {s.tolist()}")
    return int(s[0])


def to_jsonable(x: Any) -> Any:
    """Convert NumPy scalars/arrays inside metadata to plain Python for JSON."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x
