"""Optimizers through Optax, with the learning rate exposed in the optimizer state.

The train steps take any ``optax.GradientTransformation``; the helpers here find
a learning rate injected with ``optax.inject_hyperparams`` anywhere in its state
(:func:`learning_rate_of`), which is what the ``lr`` metric and the plateau
schedule need. An optimizer without one trains the same, without either.

The thesis (and PyTorch's word_language_model example) trains with plain SGD at
learning rate 20, clips the global gradient norm to 0.25, and divides the
learning rate by 4 after every epoch whose validation loss does not improve on
the best so far. The decay is a host-side decision between epochs
(:func:`plateau_update`), applied with :func:`set_learning_rate`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax


def warmup_factor(warmup_steps: int):
    """Linear warmup ``count -> min(1, (count + 1) / warmup_steps)`` (an Optax schedule)."""

    def factor(count):
        return jnp.minimum(1.0, (count + 1).astype(jnp.float32) / warmup_steps)

    return factor


def _chain(learning_rate, clip, name: str, weight_decay: float, warmup_steps: int = 0):
    parts = [optax.clip_by_global_norm(clip)] if clip > 0 else []
    if name == "sgd":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.sgd(learning_rate))
    elif name == "adam":
        parts.append(optax.adamw(learning_rate, weight_decay=weight_decay))
    else:
        raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")
    if warmup_steps:
        # a factor on the update, so the injected learning rate stays a number the
        # plateau schedule can set from the host
        parts.append(optax.scale_by_schedule(warmup_factor(warmup_steps)))
    return optax.chain(*parts)


def make_optimizer(
    name: str = "sgd",
    lr: float = 20.0,
    clip: float = 0.25,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
) -> optax.GradientTransformation:
    """Global-norm clipping followed by SGD or Adam(W), learning rate injectable.

    Args:
      name: ``"sgd"`` (thesis default) or ``"adam"``.
      lr: initial learning rate (thesis: 20 for SGD).
      clip: global-norm clipping threshold (thesis: 0.25); 0 disables clipping.
      weight_decay: decoupled weight decay (0 by default).
      warmup_steps: scale the update by ``min(1, (step + 1) / warmup_steps)`` (linear
        warmup, the usual Transformer recipe with Adam); 0: no warmup.
    """
    if name not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    return optax.inject_hyperparams(
        lambda learning_rate: _chain(learning_rate, clip, name, weight_decay, warmup_steps)
    )(learning_rate=lr)


_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def _is_lr_state(x) -> bool:
    return isinstance(x, _INJECTED) and "learning_rate" in x.hyperparams


def _lr_states(opt_state) -> list:
    leaves = jax.tree_util.tree_leaves(opt_state, is_leaf=_is_lr_state)
    return [x for x in leaves if _is_lr_state(x)]


def learning_rate_of(opt_state) -> jax.Array | None:
    """The injected learning rate in an optimizer state (traceable), or None.

    Found anywhere in the state (e.g. inside ``optax.chain``) where
    ``optax.inject_hyperparams(...)(learning_rate=...)`` put it; None for an
    optimizer without one (e.g. a plain ``optax.adam(1e-3)``).
    """
    found = _lr_states(opt_state)
    return found[0].hyperparams["learning_rate"] if found else None


def has_learning_rate(opt_state) -> bool:
    """Whether :func:`set_learning_rate` can change this state's learning rate."""
    return len(_lr_states(opt_state)) == 1


def get_learning_rate(opt_state) -> float | None:
    """Current injected learning rate as a float, or None if the optimizer exposes none."""
    lr = learning_rate_of(opt_state)
    return None if lr is None else float(lr)


def set_learning_rate(opt_state, lr: float):
    """A copy of ``opt_state`` with a new learning rate (same dtype, no retrace).

    A learning rate injected as a schedule is recomputed by Optax every step, so
    setting it has no lasting effect; inject a number to schedule it from the host.

    Raises:
      ValueError: the state has no injected learning rate, or several.
    """
    n = len(_lr_states(opt_state))
    if n != 1:
        raise ValueError(
            f"optimizer state has {n} injected learning rates, need exactly one; build it "
            "with optax.inject_hyperparams(opt)(learning_rate=lr) (make_optimizer does)"
        )

    def replace(x):
        if not _is_lr_state(x):
            return x
        old = x.hyperparams["learning_rate"]
        hp = dict(x.hyperparams)
        hp["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(old).dtype)
        return x._replace(hyperparams=hp)

    return jax.tree_util.tree_map(replace, opt_state, is_leaf=_is_lr_state)


@dataclasses.dataclass(frozen=True)
class PlateauState:
    """Best validation loss so far (``inf`` before the first evaluation)."""

    best: float = float("inf")


def plateau_update(state: PlateauState, val_loss: float, lr: float, factor: float = 0.25):
    """PyTorch example's schedule: keep ``lr`` if ``val_loss`` improved, else ``lr * factor``.

    Returns:
      ``(new_state, new_lr, improved)``.
    """
    if val_loss < state.best:
        return PlateauState(best=val_loss), lr, True
    return state, lr * factor, False
