"""Bottom-up learning of long constituents on synthetic bracket data (Saphra & Lopez 2020, Sec. 5).

One language model per condition (rule length ``L``; conduits *unfamiliar*, i.e.
seen only inside brackets, or *familiar*, i.e. also seen ``familiar_repeats``
times outside them) is trained on :func:`jaxdyn.data.synthetic.generate_brackets`
data with per-epoch checkpoints. At every checkpoint, each evaluation sequence
(bank conduits: ``familiar`` set; never-seen conduits: ``fresh`` set) is read
from a zero state and measured at the position whose next token is ``")"``
(the last conduit token, ``t = open + L``):

* ``full_logp``: ``log p(")")`` of the plain forward pass;
* ``cd_open``, ``cd_conduit``, ``cd_both``: ``log softmax(W_dec beta_h)[")"]`` with
  relevant = the open symbol / the conduit / both — the relevant part alone
  through the softmax, decoder bias left out, as the thesis's
  ``lm_synthetic_decomposition.py`` scores ``relevant_target_score``;
* ``di_hidden``, ``di_logits``: DI of the open symbol and the conduit (as two
  spans) at ``t``: ``||beta_both - beta_open - beta_conduit|| / ||beta_both||`` in
  the top layer's hidden space and in logit space;
* ``correct``: the full model gives ``")"`` probability above 1/2 at ``t`` (so ``")"``
  is its argmax; a bare argmax would count an untrained model that happens to
  rank ``")"`` first everywhere as accurate).

Departure from the thesis script: it reads its scores at the position whose
*input* is ``")"`` (i.e. the prediction of the token after ``")"``); here the
scores are read where ``")"`` is the next token, the prediction the rule governs.

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Sec. 5; Saphra (2021), PhD thesis, Edinburgh; Murdoch, Liu & Yu (2018), ICLR (CD).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.config.sections import DataConfig, ModelConfig
from jaxdyn.data.batching import batchify
from jaxdyn.data.synthetic import CLOSE, BracketConfig, BracketData, as_vocab, generate_brackets
from jaxdyn.decompose import interdependence_batch, interdependence_batch_for
from jaxdyn.studies._common import iter_selected, study_run_config
from jaxdyn.studies.bottom_up.config import EVAL_SETS, MEASURES, BottomUpConfig
from jaxdyn.train.tasks import Stream, TaskData


def run_config(config: BottomUpConfig, bracket: BracketConfig, run=None):
    """Training config of one condition; ``data.corpus`` fingerprints the data so a
    changed config cannot silently resume a run trained on other data."""
    from jaxdyn.config import RunConfig

    run = RunConfig() if run is None else run
    key = hashlib.sha1(json.dumps(dataclasses.asdict(bracket), sort_keys=True).encode())
    data = DataConfig(
        corpus=f"brackets-{key.hexdigest()[:12]}",
        batch_size=config.batch_size,
        eval_batch_size=10,
        bptt=config.bptt,
    )
    cfg = study_run_config(
        run,
        model=config.model,
        data=data,
        optim=config.optim,
        epochs=config.epochs,
        seed=config.seed + 1111,
    )
    return dataclasses.replace(cfg, seeds=seeds_of(config, run))


def seeds_of(config: BottomUpConfig, run=None) -> int:
    """Models per condition: ``config.seeds``, or the run's ``seeds`` when None."""
    if config.seeds is not None:
        return config.seeds
    return 1 if run is None else run.seeds


def bracket_task(data: BracketData, batch_size: int, eval_batch_size: int = 10) -> TaskData:
    """Language-model task on a bracket stream (ids unchanged; see :func:`as_vocab`).

    Training stream: ``data.tokens``; validation: the ``familiar`` evaluation
    sequences concatenated; test: the ``fresh`` ones.
    """
    vocab = as_vocab(data)

    def stream(ids, batch):
        b = batchify(np.asarray(ids, np.int32).reshape(-1), batch)
        return Stream(b, b, "next")

    return TaskData(
        vocab=vocab,
        out_vocab=vocab,
        train=stream(data.tokens, batch_size),
        valid=stream(data.eval_familiar, eval_batch_size),
        test=stream(data.eval_fresh, eval_batch_size),
        kind="lm",
    )


# ----------------------------------------------------------------------------- measures


def closing_spans(open_pos: np.ndarray, rule_length: int) -> np.ndarray:
    """Span pairs ``(N, 1, 2, 2)``: the open symbol ``[o, o]`` and the conduit
    ``[o + 1, o + L]`` (inclusive), for :func:`jaxdyn.decompose.interdependence_batch`."""
    op = np.asarray(open_pos, np.int32)
    part_open = np.stack([op, op], axis=1)
    part_conduit = np.stack([op + 1, op + rule_length], axis=1)
    return np.stack([part_open, part_conduit], axis=1)[:, None]


@jax.jit
def _scores(beta_logits, logits):
    """``log softmax(.)[")"]`` of the three relevant parts ``(3, N, V)`` and the full logits."""
    cd = jax.nn.log_softmax(beta_logits, axis=-1)[..., CLOSE]
    full = jax.nn.log_softmax(logits, axis=-1)[..., CLOSE]
    return cd, full, (full > jnp.log(0.5)).astype(jnp.float32)


def closing_measures(
    params,
    sequences: np.ndarray,
    open_pos: np.ndarray,
    rule_length: int,
    *,
    chunk: int = 256,
    model: ModelConfig | None = None,
) -> dict[str, np.ndarray]:
    """Measures at the closing symbol of every evaluation sequence.

    One call of :func:`jaxdyn.decompose.interdependence_batch` per chunk (packed
    schedule, span pairs open/conduit read at ``t = open + L``, hidden and logit space
    with the parts): DI in both spaces, the relevant logits ``W_dec beta`` of the open
    symbol, the conduit and both, and the forward logits at ``t`` (no second forward pass).

    Args:
      params: LSTM LM params (layout of :mod:`jaxdyn.models.lstm`).
      sequences: ``(N, S)`` ids, ``"("`` at ``open_pos`` and ``")"`` at ``open_pos + L + 1``.
      open_pos: ``(N,)`` positions of ``"("``.
      rule_length: ``L``.
      chunk: sequences per kernel call (the last call is padded to the same size).
      model: the model's config; ``kind="transformer"`` uses CD-T's engine
        (:func:`jaxdyn.decompose.engine`, with ``model.heads``), default the LSTM's.

    Returns:
      ``{measure: (N,)}`` for :data:`MEASURES` (NumPy float).

    References:
      Saphra & Lopez (2020), Sec. 5 and Eq. 1; Murdoch et al. (2018), Eqs. 8-19.
    """
    seq, op = np.asarray(sequences, np.int32), np.asarray(open_pos, np.int32)
    n = len(seq)
    if n == 0:
        raise ValueError("no evaluation sequence")
    close = op + rule_length + 1
    if np.any(close >= seq.shape[1]) or np.any(seq[np.arange(n), close] != CLOSE):
        raise ValueError("sequences do not hold ')' at open_pos + rule_length + 1")
    size = min(chunk, n)
    batch_fn = (
        interdependence_batch
        if model is None
        else interdependence_batch_for(model.kind, model.heads)
    )
    parts: dict[str, list] = {k: [] for k in MEASURES}
    for s in range(0, n, size):
        idx = np.arange(s, s + size) % n  # pad the last call by wrapping around
        res = batch_fn(
            params,
            seq[idx],
            closing_spans(op[idx], rule_length),
            (op[idx] + rule_length)[:, None],
            space=("hidden", "logits"),
            parts=True,
        )
        lg = res["logits"]
        beta = jnp.stack([lg.beta_x[:, 0], lg.beta_y[:, 0], lg.beta_xy[:, 0]])
        cd, full, correct = jax.device_get(_scores(beta, lg.output[:, 0]))
        out = {
            "full_logp": full,
            "correct": correct,
            "cd_open": cd[0],
            "cd_conduit": cd[1],
            "cd_both": cd[2],
            "di_hidden": np.asarray(res["hidden"].di[:, 0]),
            "di_logits": np.asarray(lg.di[:, 0]),
        }
        keep = min(size, n - s)
        for k in MEASURES:
            parts[k].append(np.asarray(out[k], np.float64)[:keep])
    return {k: np.concatenate(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------- the study


def train_condition(
    config: BottomUpConfig, name, rule_length, repeats, root: Path, progress, run=None
):
    """Generate one condition's data and train (or resume) its model; returns the data."""
    from jaxdyn.train.loop import train

    bracket = config.bracket_config(rule_length, repeats)
    data = generate_brackets(bracket)
    cfg = run_config(config, bracket, run)
    res = train(cfg, root / name, bracket_task(data, config.batch_size), progress=progress)
    if not res.finished:
        raise RuntimeError(f"training of condition {name} did not finish")
    return data


def condition_table(
    run_dir: Path,
    data: BracketData,
    rule_length: int,
    chunk: int,
    checkpoints: str = "all",
    member: int | None = None,
    model: ModelConfig | None = None,
) -> dict:
    """Per-example measures at the selected checkpoints of one model (population ``member``):
    ``{epoch: {eval_set: {measure: (N,)}}}``."""
    out = {}
    for ck in iter_selected(run_dir, checkpoints, "bottom_up.checkpoints", member=member):
        out[ck.epoch] = {
            s: closing_measures(
                ck.params,
                getattr(data, f"eval_{s}"),
                data.eval_open,
                rule_length,
                chunk=chunk,
                model=model,
            )
            for s in EVAL_SETS
        }
    return out


def run_bottom_up(
    workdir: str | Path, config: BottomUpConfig, *, run=None, progress: bool = True
) -> dict:
    """Train every condition, measure every checkpoint, write table, plots and section.

    Args:
      workdir: run folder (``workdir/bottom_up/<condition>`` holds each model).
      config: the study's section of the config tree.
      run: the run's config (its ``epochs`` fills ``config.epochs = None``); default
        ``RunConfig()``.
      progress: progress output.

    Each condition trains ``seeds_of(config, run)`` models (seeds ``seed + 1111 + m``,
    one population); every member is measured as its own model.

    Returns:
      The findings dict.
    """
    from jaxdyn.studies.bottom_up.report import write_outputs

    workdir = Path(workdir)
    root = workdir / "bottom_up"
    n_seeds = seeds_of(config, run)
    members = list(range(n_seeds)) if n_seeds > 1 else [None]
    per_member: list[dict] = [{} for _ in members]
    for name, rule_length, repeats in config.conditions():
        data = train_condition(config, name, rule_length, repeats, root, progress, run)
        for k, m in enumerate(members):
            per_member[k][name] = {
                "rule_length": rule_length,
                "familiar_repeats": repeats,
                "epochs": condition_table(
                    root / name,
                    data,
                    rule_length,
                    config.eval_chunk,
                    config.checkpoints,
                    m,
                    config.model,
                ),
            }
        if progress:
            print(f"[bottom_up] condition {name} measured ({n_seeds} seeds)", file=sys.stderr)
    first = config.conditions()[0]
    lm_cfg = run_config(config, config.bracket_config(first[1], first[2]), run)
    return write_outputs(workdir, per_member, config, lm_cfg)
