"""The main job: train a language model with per-epoch checkpoints, analyse, report.

``run_study`` runs named stages in order over one run folder; each stage reads
what earlier stages left (checkpoints, metrics) and its own section of the one
config tree (``cfg.sparsity``, ``cfg.similarity``, ...), and writes its own
report section, so a rerun resumes training and recomputes only the report.
Stages are listed in :data:`STAGES`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from jaxdyn.config import RunConfig, describe
from jaxdyn.report import assemble, table, training_curves, write_section
from jaxdyn.report.format import fixed
from jaxdyn.studies._common import model_text
from jaxdyn.train.loop import TrainResult, train
from jaxdyn.train.tasks import TaskData, load_task


@dataclasses.dataclass
class StudyContext:
    """What stages share.

    Attributes:
      cfg: the run configuration.
      workdir: the run folder.
      data: the language-model task (built on first use: :meth:`task`).
      result: the training result (after the ``train`` stage).
      progress: show progress bars.
      data_dir: the real-corpora folder, if one was given.
    """

    cfg: RunConfig
    workdir: Path
    data: TaskData | None = None
    result: TrainResult | None = None
    progress: bool = True
    data_dir: Path | None = None

    def task(self) -> TaskData:
        """The run's language-model task (read on first use)."""
        if self.data is None:
            self.data = load_task(self.cfg.data)
        return self.data


def _train_stage(ctx: StudyContext) -> None:
    ctx.result = train(ctx.cfg, ctx.workdir, ctx.task(), progress=ctx.progress)
    hist = ctx.result.history
    population = ""
    if ctx.result.seeds is not None:  # one row per member per epoch: show member 0's
        seeds = ctx.result.seeds
        finals = hist[-len(seeds) :]
        population = (
            f"\nPopulation of {len(seeds)} members trained as one state (seeds "
            f"{', '.join(map(str, seeds))}); final validation perplexity per member: "
            + ", ".join(
                f"seed {r['seed']} {fixed(r['valid_ppl'], 2)}"
                + ("" if r.get("finite", True) else " (FAILED)")
                for r in finals
            )
            + ". **The curves show the mean over the members with a 95% t-interval band; "
            f"the table below shows member 0 (seed {seeds[0]})**; every "
            f"member's rows are in `{ctx.workdir / 'metrics' / 'epochs.csv'}`.\n"
        )
    fig = training_curves(ctx.workdir / "report" / "training_curves.png", hist)
    if ctx.result.seeds is not None:
        hist = [r for r in hist if r["member"] == 0]
    rows = [
        (r["epoch"], r["step"], r["train_ppl"], r["valid_ppl"], r["lr"], r["seconds"]) for r in hist
    ]
    best = min(hist, key=lambda r: r["valid_loss"])
    text = f"""## Training

Language model on `{ctx.cfg.data.corpus}`: {len(ctx.task().vocab):,} types,
{ctx.task().train.num_tokens:,} training tokens, {ctx.cfg.model.num_layers} x {ctx.cfg.model.hidden}
{model_text(ctx.cfg.model)}, {ctx.cfg.optim.name} (lr {ctx.cfg.optim.lr}, clip {ctx.cfg.optim.clip}), {ctx.cfg.epochs} epochs.
Best validation perplexity {best["valid_ppl"]:.2f} at epoch {best["epoch"]}.
{population}Checkpoints: `{ctx.workdir / "ckpt"}` (epoch 0 is the initialisation).

![training curves]({fig.name})

{table(["epoch", "step", "train ppl", "valid ppl", "lr", "seconds"], rows)}
"""
    scale = {
        "seeds": ctx.cfg.seeds,
        "epochs": ctx.cfg.epochs,
        "tokens": ctx.task().train.num_tokens,
    }
    write_section(ctx.workdir, 10, "training", text, stage="train", scale=scale)


def _sparsity_stage(ctx: StudyContext) -> None:
    from jaxdyn.studies.sparsity.report import sparsity_stage

    sparsity_stage(ctx)  # report order 20


def _interactions_stage(ctx: StudyContext) -> None:
    from jaxdyn.studies.interactions.report import interactions_stage

    interactions_stage(ctx)  # report order 40


def _bottom_up_stage(ctx: StudyContext) -> None:
    from jaxdyn.studies.bottom_up.report import bottom_up_stage

    bottom_up_stage(ctx)  # report order 50


def _attention_stage(ctx: StudyContext) -> None:
    from jaxdyn.studies.attention.report import attention_stage

    attention_stage(ctx)  # report order 25


def _similarity_stage(ctx: StudyContext) -> None:
    from jaxdyn.studies.similarity.report import similarity_stage

    similarity_stage(ctx)  # report order 30


def _phases_stage(ctx: StudyContext) -> None:
    from jaxdyn.studies.phases.report import phases_stage

    phases_stage(ctx)  # report order 60


#: Stage name -> function, in the order ``jaxdyn run`` runs them.
STAGES: dict[str, Callable[[StudyContext], None]] = {
    "train": _train_stage,
    "sparsity": _sparsity_stage,
    "interactions": _interactions_stage,
    "bottom_up": _bottom_up_stage,
    "similarity": _similarity_stage,
    "attention": _attention_stage,
    "phases": _phases_stage,
}

#: Stages run only when named (``--stages phases``): a training map needs a dense
#: checkpoint schedule (``checkpoint.schedule=log``), not the per-epoch default.
OPT_IN = frozenset({"phases"})


#: Stages that analyse the run's own language model (``train`` runs first for them);
#: the other studies train models of their own.
NEEDS_TRAIN = frozenset({"sparsity", "attention", "phases"})


def _population_notice(workdir: Path, cfg: RunConfig, names: list[str]) -> None:
    """Say (stderr and report) what each stage does with a population (``seeds > 1``)."""
    lines = []
    for name in names:
        own = getattr(getattr(cfg, name, None), "seeds", "absent")
        own = cfg.seeds if own is None else own  # a study's seeds = None follows the run's
        if name == "train":
            what = f"trains all {cfg.seeds} members (seeds {cfg.seed}..{cfg.seed + cfg.seeds - 1})"
        elif name in NEEDS_TRAIN:  # sparsity, attention, phases: every member, in turn
            what = (
                f"analyses every member (seeds {cfg.seed}..{cfg.seed + cfg.seeds - 1}) as its "
                "own model and decides each finding across seeds"
                if name != "phases"
                else f"analyses every member (seeds {cfg.seed}..{cfg.seed + cfg.seeds - 1}): "
                "one map over all members' checkpoints"
            )
        elif name in ("interactions", "bottom_up"):
            what = (
                f"trains its own models as populations of {own} ({name}.seeds) and decides "
                "each finding across them"
                if own > 1
                else f"trains its own single-seed models ({name}.seeds = {own})"
            )
        elif name == "similarity":
            what = (
                f"trains its own models for each of {own} seeds (similarity.seeds; separate "
                "runs per seed) and decides each finding across them"
                if own > 1
                else f"trains its own single-seed models (similarity.seeds = {own})"
            )
        else:
            what = "trains its own single-seed models (seeds applies to the run's model only)"
        lines.append(f"- `{name}`: {what}")
        print(f"[jaxdyn] seeds={cfg.seeds}: stage {name} {what}", file=sys.stderr)
    text = (
        "## Population\n\n`seeds = {}`: the run's language model is a population.\n\n{}\n".format(
            cfg.seeds, "\n".join(lines)
        )
    )
    write_section(workdir, 11, "population", text, stage="train")


def run_study(
    cfg: RunConfig,
    workdir: str | Path,
    *,
    stages: Sequence[str] | None = None,
    progress: bool = True,
    data_dir: Path | None = None,
    data: TaskData | None = None,
) -> Path:
    """Run the study's stages and assemble the report; returns the report path."""
    workdir = Path(workdir)
    names = [s for s in STAGES if s not in OPT_IN] if stages is None else list(stages)
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        from jaxdyn.config import ConfigError

        raise ConfigError(f"unknown stages {unknown}; choose from {list(STAGES)}")
    if "train" not in names and any(s in NEEDS_TRAIN for s in names):
        names.insert(0, "train")  # a finished run resumes instantly
    t0, since = time.perf_counter(), time.time()
    ctx = StudyContext(cfg, workdir, data, progress=progress, data_dir=data_dir)
    if cfg.seeds > 1:
        _population_notice(workdir, cfg, names)
    from jaxdyn.studies import cache

    cache.validate_inputs(cfg, names, data_dir)  # before any training
    for name in names:
        key = None if name == "train" else cache.stage_key(cfg, name, workdir, data_dir)
        if key is not None:
            hit, why = cache.lookup(workdir, name, key)
            if hit:
                print(f"[jaxdyn] stage {name}: cached ({why})", file=sys.stderr)
                cache.mark_current(workdir, name)
                continue
            print(f"[jaxdyn] stage {name} ({why})", file=sys.stderr)
        else:
            print(f"[jaxdyn] stage {name}", file=sys.stderr)
        before = cache.sections_snapshot(workdir)
        STAGES[name](ctx)
        if key is not None:
            cache.record(workdir, name, key, cache.written_since(workdir, before))
    preamble = (
        f"Run folder `{workdir}`; this invocation ran stages {', '.join(names)} in "
        f"{time.perf_counter() - t0:.0f} s (the Stages table below lists when every "
        "section was written). The configuration is in the appendix.\n"
    )
    appendix = f"Configuration of this invocation:\n\n```json\n{describe(cfg)}\n```\n"
    return assemble(workdir, "jaxdyn report", preamble, since=since, appendix=appendix)
