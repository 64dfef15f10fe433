"""Checkpoint schedules and retention: which steps to save, of which kind, which to keep.

Pure functions of step numbers and a :class:`jaxdyn.config.CheckpointConfig`
(``checkpoint.*`` keys); the host loops (``jaxdyn.train.loop``,
``jaxdyn.train.population_loop``) ask :func:`scheduled_kind` after every
optimizer step and :func:`to_demote` after every scheduled full save.

Kinds of checkpoints (the ``kind`` field of their metadata):

- ``init`` (step 0) and ``epoch`` (every epoch end): always saved, always full;
- ``steps``: a scheduled full checkpoint (parameters, optimizer state, data
  position, RNG: training resumes from it exactly);
- ``params``: a scheduled parameters-only checkpoint (light, for analysis; a
  resume starts from the newest full checkpoint before it);
- ``interrupted``: the full checkpoint of a run stopped on purpose (``max_steps``).

Schedules (``checkpoint.schedule``): ``epoch`` adds nothing (the default, today's
behaviour); ``every`` saves every ``every`` steps (``every:K`` sets K inline);
``log`` saves the Pythia schedule: steps 1, 2, 4, ..., ``log_until``, then every
``every`` steps (Biderman et al., 2023, "Pythia", Sec. 2: steps 0, 1, 2, 4, ...,
512, then every 1,000).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from jaxdyn.config import CheckpointConfig

#: Kinds that hold a whole training state (a run can resume from them).
FULL_KINDS = ("init", "epoch", "steps", "interrupted")


def schedule_every(ck: CheckpointConfig) -> int:
    """Steps between scheduled checkpoints (``every:K`` overrides ``every``)."""
    _, _, k = ck.schedule.partition(":")
    return int(k) if k else ck.every


def is_scheduled(step: int, ck: CheckpointConfig) -> bool:
    """Whether the schedule saves after ``step`` optimizer steps (step 0 is ``init``)."""
    if step < 1:
        return False
    name = ck.schedule.partition(":")[0]
    every = schedule_every(ck)
    if name == "epoch":
        return False
    if name == "every":
        return step % every == 0
    # log: powers of two up to log_until, then multiples of every
    if step <= ck.log_until:
        return step & (step - 1) == 0
    return step % every == 0


def scheduled_kind(step: int, ck: CheckpointConfig, legacy_every: int = 0) -> str | None:
    """The kind of checkpoint to save after ``step`` steps, or None.

    Args:
      step: optimizer steps completed.
      ck: the checkpoint section.
      legacy_every: ``RunConfig.checkpoint_every_steps`` (full ``steps``
        checkpoints every N steps; 0: none), kept for older configs.

    Returns:
      ``"steps"`` (full), ``"params"`` (parameters only) or None. Epoch ends are
      not decided here: the loop saves an ``epoch`` checkpoint there anyway.
    """
    if step < 1:
        return None
    full = (legacy_every and step % legacy_every == 0) or (
        ck.full_every and step % ck.full_every == 0
    )
    if is_scheduled(step, ck):
        return "steps" if ck.kind == "full" or full else "params"
    return "steps" if full else None


def scheduled_steps(total_steps: int, ck: CheckpointConfig, legacy_every: int = 0) -> list[int]:
    """Every step in ``1..total_steps`` the schedule saves (any kind), ascending."""
    return [s for s in range(1, total_steps + 1) if scheduled_kind(s, ck, legacy_every)]


def to_demote(kinds: Sequence[tuple[int, str]], keep_full: int) -> list[int]:
    """Scheduled full checkpoints that retention turns into parameters-only ones.

    Args:
      kinds: ``(step, kind)`` of the checkpoints saved so far.
      keep_full: ``checkpoint.keep_full`` (0: keep all).

    Returns:
      The steps of the ``steps`` checkpoints older than the newest ``keep_full``
      of them, ascending (``init``/``epoch``/``interrupted`` ones are never demoted).
    """
    if keep_full <= 0:
        return []
    full = sorted(s for s, k in kinds if k == "steps")
    return full[: max(0, len(full) - keep_full)]


def newest_full(kinds: Iterable[tuple[int, str]]) -> int | None:
    """The newest step whose checkpoint a run can resume from (a full kind), or None."""
    full = [s for s, k in kinds if k in FULL_KINDS]
    return max(full) if full else None


def demote_candidates(step: int, ck: CheckpointConfig, legacy_every: int = 0) -> list[int]:
    """The scheduled full checkpoints up to ``step`` that ``ck.keep_full`` demotes, ascending.

    Computed from the schedule alone (no I/O); the loop hands them to
    ``Trajectory.demote_all``, which skips those already demoted.
    """
    if ck.keep_full <= 0:
        return []
    full = [
        (s, "steps") for s in range(1, step + 1) if scheduled_kind(s, ck, legacy_every) == "steps"
    ]
    return to_demote(full, ck.keep_full)
