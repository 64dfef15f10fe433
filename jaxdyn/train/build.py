"""From a run config to the objects a run needs: model, optimizer, capture spec, steps.

The config path of :func:`jaxdyn.train.loop.train` builds its model and
optimizer here; a caller with its own model or ``optax`` transformation passes
them to ``train`` instead and nothing here is used for them.
"""

from __future__ import annotations

import functools

import optax

from jaxdyn.config import ModelConfig, OptimConfig, RunConfig
from jaxdyn.models.lstm import LSTMSequenceModel
from jaxdyn.models.transformer import TransformerSequenceModel
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.optim import make_optimizer
from jaxdyn.train.step import make_eval_step, make_train_step
from jaxdyn.train.tasks import TaskData

#: Model kinds ``cfg.model.kind`` may name.
MODEL_KINDS = ("lstm", "transformer")


def model_for(m: ModelConfig, vocab_size: int, num_outputs: int, *, context: int = 35):
    """The model a model config describes (``m.kind``, default ``"lstm"``), for given sizes.

    ``context`` is the transformer's context length (its learned position table; the
    run's ``data.bptt``); the LSTM ignores it.
    """
    kind = getattr(m, "kind", "lstm")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model.kind {kind!r}; choose from {list(MODEL_KINDS)}")
    if kind == "transformer":
        return TransformerSequenceModel(
            vocab_size=vocab_size,
            num_outputs=num_outputs,
            d_model=m.hidden,
            num_layers=m.num_layers,
            heads=m.heads,
            d_ff=4 * m.hidden if m.d_ff is None else m.d_ff,
            context=context,
            dropout=m.dropout,
            tie_weights=m.tie_weights,
            positions=m.positions,
        )
    return LSTMSequenceModel(
        vocab_size=vocab_size,
        num_outputs=num_outputs,
        emb_dim=m.emb_dim,
        hidden=m.hidden,
        num_layers=m.num_layers,
        dropout=m.dropout,
        tie_weights=m.tie_weights,
        init_range=m.init_range,
    )


def build_model(
    cfg: RunConfig,
    data: TaskData | None = None,
    *,
    vocab_size: int | None = None,
    num_outputs: int | None = None,
):
    """The model a config describes, sized by a task (or explicit vocabulary sizes)."""
    if data is not None:
        vocab_size, num_outputs = len(data.vocab), len(data.out_vocab)
    if vocab_size is None or num_outputs is None:
        raise ValueError("build_model needs a task or both vocab_size and num_outputs")
    return model_for(cfg.model, vocab_size, num_outputs, context=cfg.data.bptt)


@functools.lru_cache(maxsize=16)
def optimizer_for(optim: OptimConfig) -> optax.GradientTransformation:
    """The optimizer an optimizer config describes (memoised: equal configs, same object)."""
    return make_optimizer(
        optim.name, optim.lr, optim.clip, optim.weight_decay, getattr(optim, "warmup_steps", 0)
    )


def capture_spec(cfg: RunConfig) -> CaptureSpec | None:
    """The training-time capture spec of a config (None when disabled)."""
    c = cfg.capture
    if not c.enabled:
        return None
    return CaptureSpec(every=c.every, reductions=c.reductions, param_grads=c.param_grads)


def _build_steps(model, tx, spec):
    capture = make_train_step(model, tx, spec) if spec is not None else None
    return make_train_step(model, tx, None), capture, make_eval_step(model)


_cached_steps = functools.lru_cache(maxsize=16)(_build_steps)


def compiled_steps(model, tx: optax.GradientTransformation, spec: CaptureSpec | None):
    """``(step, capture_step, eval_step)`` for a model/optimizer/spec, memoised.

    Models (frozen Flax dataclasses), the optimizers of :func:`optimizer_for` and
    specs are hashable, so runs of the same shapes in one process (taggers of a
    study, resumed runs, tests) reuse the jitted functions and XLA's compiled
    programs instead of recompiling; an unhashable model is compiled afresh.
    """
    try:
        hash((model, tx, spec))
    except TypeError:  # e.g. a model with a list attribute
        return _build_steps(model, tx, spec)
    return _cached_steps(model, tx, spec)
