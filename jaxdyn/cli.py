"""Command line: ``jaxdyn run | train | config``.

This module is the only place that maps flags to configurations (and, through
``jaxdyn.data.paths.resolve_data_dir``, reads ``$JAXDYN_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from jaxdyn.config import PRESETS, RunConfig, describe, load_config, override, preset

_EPILOG = """\
examples:
  jaxdyn run                                  # default study on the embedded Penn Treebank (~2 min on 2 idle cores)
  jaxdyn run --preset smoke --workdir /tmp/s  # CI-sized (a couple of minutes)
  jaxdyn train --preset thesis --workdir runs/thesis          # Saphra (2021) setup, 40 epochs
  jaxdyn train --preset smoke --set optim.lr=5 --set epochs=2 # override any config key
  jaxdyn train --preset smoke --seeds 4                       # a population of 4 seeds as one state
  jaxdyn train --corpus ewt --data-dir ../shared/data         # UD English-EWT instead of PTB
  jaxdyn config --preset thesis > thesis.json                 # print a preset's full config tree
  jaxdyn run --config thesis.json --set interactions.max_sentences=50  # read it back, override

Every config key, study sections included, can be set with --set SECTION.KEY=VALUE;
`jaxdyn config` lists them all.
Rerunning a command on the same --workdir resumes from its newest checkpoint (a larger
--epochs extends a finished run; unchanged analysis stages are served from the cache);
Ctrl-C saves a checkpoint at the next step. Errors print `jaxdyn: error: ...` (exit 2).
Real corpora (EWT, Brown) are read from --data-dir or $JAXDYN_DATA_DIR.
"""


#: Exit status of every error the user can fix (argparse's own, config, corpora, checkpoints).
EXIT_ERROR = 2
#: Exit status after Ctrl-C (128 + SIGINT, the shell's convention).
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors read ``jaxdyn: error: ...`` (exit status 2)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"jaxdyn: error: {message}\n")


def _report_error(e: BaseException) -> int:
    print(f"jaxdyn: error: {e}", file=sys.stderr)
    return EXIT_ERROR


def _report_interrupt(e: KeyboardInterrupt) -> int:
    from jaxdyn.train.loop import TrainingInterrupted

    if isinstance(e, TrainingInterrupted):
        print(
            f"jaxdyn: interrupted: checkpoint saved at step {e.step} (epoch {e.epoch}, "
            f"chunk {e.chunk}) in {e.workdir}; rerun the same command to resume",
            file=sys.stderr,
        )
    else:
        print(
            "jaxdyn: interrupted (no checkpoint saved at this point; rerun the same command "
            "to resume from the newest one)",
            file=sys.stderr,
        )
    return EXIT_INTERRUPTED


def add_config_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    p.add_argument(
        "--preset",
        default=default_preset,
        choices=sorted(PRESETS),
        help=f"starting configuration (default: {default_preset}); smoke = CI-sized, "
        "default = about 2 minutes on 2 idle cores (5 min with --data-dir; measured 2026-12-01), thesis = 2x200 LSTM on full PTB for 40 epochs",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="start from this config tree (JSON, as `jaxdyn config` prints) instead of --preset",
    )
    p.add_argument(
        "--set",
        "-s",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. optim.lr=5, model.hidden=100, epochs=3 (repeatable)",
    )
    p.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    p.add_argument(
        "--seeds",
        type=int,
        help="shortcut for --set seeds=N: train a population of N models as one state "
        "(member m uses seed+m; sharded over all visible devices)",
    )
    p.add_argument(
        "--corpus",
        help="ptb (default, embedded), ewt, brown, or a folder with train/valid/test.txt",
    )
    p.add_argument("--data-dir", help="folder with the real corpora (default: $JAXDYN_DATA_DIR)")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (epoch lines and stage headers are printed either way)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error instead of a one-line message",
    )
    add_process_args(p)


def add_process_args(p: argparse.ArgumentParser) -> None:
    """Flags read by :func:`prepare_process` (every command and experiment script has them)."""
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's default malloc settings; by default large host buffers stay in the "
        "heap, which saves about a quarter of a train step on CPU (see jaxdyn.runtime)",
    )
    g = p.add_argument_group(
        "several processes (jax.distributed: one process per host or per GPU, same command "
        "and --workdir on a shared file system, each with its --process-id)"
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    g.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
    g.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0..N-1")


def prepare_process(args) -> None:
    """Process-level settings a command applies once, before any work (see ``jaxdyn.runtime``):
    the allocator, and ``jax.distributed.initialize`` when ``--coordinator`` is given."""
    if not getattr(args, "default_malloc", False):
        from jaxdyn.runtime import tune_host_allocator

        tune_host_allocator()
    coordinator = getattr(args, "coordinator", None)
    given = [getattr(args, k, None) is not None for k in ("num_processes", "process_id")]
    if (coordinator is None and any(given)) or (coordinator is not None and not all(given)):
        _report_error("--coordinator, --num-processes and --process-id go together")
        raise SystemExit(EXIT_ERROR)
    if coordinator is not None:
        import jax

        jax.distributed.initialize(
            coordinator, num_processes=args.num_processes, process_id=args.process_id
        )


def config_from_args(args) -> tuple[RunConfig, Path | None]:
    """Config from preset (or ``--config FILE``) + overrides, and the real-corpora folder."""
    base = load_config(args.config) if getattr(args, "config", None) else preset(args.preset)
    cfg = override(base, args.overrides)
    if getattr(args, "epochs", None) is not None:
        cfg = override(cfg, [f"epochs={args.epochs}"])
    if getattr(args, "seeds", None) is not None:
        cfg = override(cfg, [f"seeds={args.seeds}"])
    if getattr(args, "corpus", None):
        cfg = override(cfg, [f"data.corpus={args.corpus}"])
    from jaxdyn.data.paths import CorpusNotFoundError, resolve_data_dir

    flag = getattr(args, "data_dir", None) or cfg.data.data_dir
    if flag or cfg.data.corpus in ("ewt", "brown"):
        data_dir = resolve_data_dir(flag)  # errors clearly when missing
    else:
        try:  # optional extras (gold POS for the sparsity study) when $JAXDYN_DATA_DIR is set
            data_dir = resolve_data_dir(None)
        except CorpusNotFoundError:
            data_dir = None
    if data_dir is not None and cfg.data.corpus in ("ewt", "brown"):
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=str(data_dir)))
    return cfg, data_dir


def experiment_main(argv, *, stage: str, doc: str, needs_corpora: bool = False) -> int:
    """``main`` of an ``experiments/`` script: one stage of ``jaxdyn run`` with the same flags.

    Args:
      argv: command-line arguments (None: ``sys.argv[1:]``).
      stage: the stage to run (``sparsity``, ``similarity``, ``interactions``, ``bottom_up``).
      doc: the script's docstring (its ``--help`` text).
      needs_corpora: fail at once, before any training, without the real corpora.
    """
    ap = Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, "default")
    ap.add_argument("--workdir", help=f"run folder (default: jaxdyn-runs/{stage}-<preset>)")
    args = ap.parse_args(argv)
    prepare_process(args)
    from jaxdyn.studies.run import run_study

    try:
        cfg, data_dir = config_from_args(args)
        if needs_corpora and data_dir is None:
            from jaxdyn.data.paths import resolve_data_dir

            data_dir = resolve_data_dir(None)  # raises CorpusNotFoundError naming what to pass
        workdir = Path(args.workdir or f"jaxdyn-runs/{stage}-{args.preset}")
        report = run_study(
            cfg, workdir, stages=[stage], progress=not args.no_progress, data_dir=data_dir
        )
    except user_errors() as e:
        if args.debug:
            raise
        return _report_error(e)
    except KeyboardInterrupt as e:
        return _report_interrupt(e)
    print(f"report: {report}")
    return 0


def _cmd_train(args) -> int:
    from jaxdyn.train import load_task, train

    cfg, _ = config_from_args(args)
    workdir = Path(args.workdir or f"jaxdyn-runs/train-{args.preset}")
    data = load_task(cfg.data)
    res = train(cfg, workdir, data, progress=not args.no_progress, max_steps=args.max_steps)
    last = res.history[-1]
    if res.seeds is not None:  # a population: one final row per member
        rows = res.history[-len(res.seeds) :]
        ppls = ", ".join(f"seed {r['seed']}: {r['valid_ppl']:.2f}" for r in rows)
        print(
            f"{'finished' if res.finished else 'stopped'} at epoch {last['epoch']}, step "
            f"{last['step']}: {len(rows)} members, valid ppl {ppls}; metrics (one row per "
            f"member) in {workdir / 'metrics'}"
        )
        return 0
    print(
        f"{'finished' if res.finished else 'stopped'} at epoch {last['epoch']}, step {last['step']}: "
        f"valid ppl {last['valid_ppl']:.2f}; metrics in {workdir / 'metrics'}"
    )
    return 0


def _cmd_run(args) -> int:
    from jaxdyn.config import ConfigError
    from jaxdyn.studies.run import STAGES, run_study

    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    if stages is not None:  # before anything is read or trained
        bad = [s for s in stages if s not in STAGES]
        if bad or not stages:
            raise ConfigError(
                f"unknown stage{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} "
                f"in --stages; choose from {', '.join(STAGES)}"
                if bad
                else f"--stages is empty; choose from {', '.join(STAGES)}"
            )
    cfg, data_dir = config_from_args(args)
    workdir = Path(args.workdir or f"jaxdyn-runs/{args.study}")
    report = run_study(
        cfg,
        workdir,
        stages=stages,
        progress=not args.no_progress,
        data_dir=data_dir,
    )
    print(f"report: {report}")
    return 0


def _cmd_config(args) -> int:
    print(describe(config_from_args(args)[0]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxdyn`` argument parser."""
    parser = Parser(
        prog="jaxdyn",
        description="Training dynamics of neural language models: train LSTM LMs with "
        "per-epoch checkpoints and traces, then analyse sparsity, similarity and interactions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser(
        "run",
        help="the main job: train, analyse every checkpoint, write a report (resumable)",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p, "default")
    p.add_argument("--workdir", help="run folder (default: ./jaxdyn-runs/<study>)")
    p.add_argument("--study", default="default", help="name of the study folder (default: default)")
    p.add_argument(
        "--stages", help="comma-separated subset of stages to run (training always runs first)"
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "train",
        help="train one language model with per-epoch checkpoints (resumable)",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p, "smoke")
    p.add_argument("--workdir", help="run folder (default: ./jaxdyn-runs/train-<preset>)")
    p.add_argument(
        "--max-steps", type=int, help="stop (with a checkpoint) after N steps in this call"
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("config", help="print the full configuration a preset and overrides give")
    add_config_args(p, "default")
    p.set_defaults(func=_cmd_config)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix (shown as one line; others keep their traceback)."""
    from jaxdyn.checkpoint import CheckpointError
    from jaxdyn.config import ConfigError
    from jaxdyn.data.paths import CorpusError

    return (ConfigError, CheckpointError, CorpusError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxdyn`` command.

    Errors the user can fix (flags, config, corpora, checkpoints) print one line
    ``jaxdyn: error: ...`` and exit 2; Ctrl-C saves a checkpoint at the next step,
    says how to resume and exits 130; any other exception is a bug and keeps its
    traceback (``--debug`` shows the traceback of every error).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    prepare_process(args)
    try:
        return args.func(args)
    except user_errors() as e:
        if getattr(args, "debug", False):
            raise
        return _report_error(e)
    except KeyboardInterrupt as e:
        if getattr(args, "debug", False):
            raise
        return _report_interrupt(e)


if __name__ == "__main__":
    sys.exit(main())
