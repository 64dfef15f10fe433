"""LSTM and Transformer side by side: the thesis findings that apply to both architectures.

Runs the same stages with the same data, study sections and verdict rules twice: once
with ``model.kind=lstm`` and once with ``model.kind=transformer`` (the run's model and
the similarity study's language model and taggers; each kind with its optimizer recipe,
``jaxdyn.config.KIND_OPTIM``), into ``WORKDIR/lstm`` and ``WORKDIR/transformer``, and
writes ``WORKDIR/comparison.md``: model sizes, perplexities, and every finding's verdict
and key number for both kinds in one table (the attention study applies to the
Transformer only). The interactions and bottom-up studies decompose each kind with its own
engine (the LSTM's CD, CD-T for the Transformer: ``jaxdyn.decompose.engine``); the
Transformer's interactions model gets a context of at least ``interactions.max_words + 1``
tokens (its sentences are read whole, from ``<eos>``, where the LSTM carries its state).

    python experiments/architectures.py --preset smoke --data-dir ../shared/data
    python experiments/architectures.py --preset default --data-dir ../shared/data \\
        --stages sparsity,attention
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

KINDS = ("lstm", "transformer")
DEFAULT_STAGES = ("sparsity", "similarity", "attention", "interactions", "bottom_up")


def kind_config(cfg, kind: str):
    """``cfg`` with the run's and every study's models of ``kind`` (the studies that train
    their own models: ``jaxdyn.studies.cache.OWN_MODELS``)."""
    from jaxdyn.config import override
    from jaxdyn.studies.cache import OWN_MODELS

    sets = [f"model.kind={kind}", *(f"{s}.model.kind={kind}" for s in sorted(OWN_MODELS))]
    if kind == "transformer":
        bptt = max(cfg.interactions.data.bptt, cfg.interactions.max_words + 1)
        sets.append(f"interactions.data.bptt={bptt}")
    return override(cfg, sets)


def _n_params(workdir: Path) -> int:
    import jax
    import jax.numpy as jnp

    from jaxdyn.train.trajectory import run_model

    _, model, _, _ = run_model(workdir)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes["params"]))


def _best_valid_ppl(workdir: Path) -> str:
    path = workdir / "metrics" / "epochs.csv"
    if not path.exists():
        return "n/a"
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("valid_ppl") not in (None, "")]
    if not rows:
        return "n/a"
    best = min(rows, key=lambda r: float(r["valid_ppl"]))
    return f"{float(best['valid_ppl']):.2f} (epoch {best['epoch']})"


def comparison(root: Path, cfgs: dict) -> str:
    """The side-by-side Markdown of the two runs under ``root``."""
    from jaxdyn.report import read_sections, table

    rows, order = {}, []
    for kind in KINDS:
        for sec in read_sections(root / kind):
            for r in sec["summary"]:
                key = (sec["stage"], r["finding"])
                if key not in rows:
                    rows[key] = {}
                    order.append(key)
                rows[key][kind] = f"**{r['verdict']}**: {r['number']}"
    body = [
        (stage, finding, *(rows[(stage, finding)].get(k, "n/a (not applicable)") for k in KINDS))
        for stage, finding in order
    ]
    sizes = [
        (
            kind,
            f"{_n_params(root / kind):,}",
            _best_valid_ppl(root / kind),
            f"{cfgs[kind].optim.name} lr {cfgs[kind].optim.lr:g}"
            + (
                f", warmup {cfgs[kind].optim.warmup_steps}" if cfgs[kind].optim.warmup_steps else ""
            ),
        )
        for kind in KINDS
    ]
    c = cfgs["lstm"]
    return f"""# LSTM vs Transformer

Same corpus (`{c.data.corpus}`, {c.data.max_train_tokens or "all"} training tokens), epochs
({c.epochs}), seeds ({c.seeds}), study sections and verdict rules; `hidden` =
{c.model.hidden} is the LSTM's hidden size and the Transformer's d_model,
{c.model.num_layers} layers/blocks. Run folders: `{root / "lstm"}`, `{root / "transformer"}`
(each has its full report under `report/README.md`).

{table(["model", "parameters", "best valid perplexity", "optimizer"], sizes)}

{table(["stage", "finding", "LSTM", "Transformer"], body)}
"""


def main(argv=None) -> int:
    from jaxdyn.cli import add_config_args, config_from_args, prepare_process

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_args(ap, "smoke")
    ap.add_argument("--workdir", help="root folder (default: jaxdyn-runs/architectures-<preset>)")
    ap.add_argument(
        "--stages",
        default=",".join(DEFAULT_STAGES),
        help=f"stages to run on both kinds (default: {','.join(DEFAULT_STAGES)})",
    )
    args = ap.parse_args(argv)
    prepare_process(args)
    from jaxdyn.studies.run import run_study

    cfg, data_dir = config_from_args(args)
    root = Path(args.workdir or f"jaxdyn-runs/architectures-{args.preset}")
    stages = [s for s in args.stages.split(",") if s]
    cfgs = {kind: kind_config(cfg, kind) for kind in KINDS}
    for kind in KINDS:
        print(f"[architectures] {kind}", file=sys.stderr)
        run_study(
            cfgs[kind],
            root / kind,
            stages=["train", *stages],
            progress=not args.no_progress,
            data_dir=data_dir,
        )
    out = root / "comparison.md"
    out.write_text(comparison(root, cfgs))
    print(f"comparison: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
