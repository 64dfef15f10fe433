"""Optimizers through Optax, with the learning rate exposed in the optimizer state.

The thesis (and PyTorch's word_language_model example) trains with plain SGD at
learning rate 20, clips the global gradient norm to 0.25, and divides the
learning rate by 4 after every epoch whose validation loss does not improve on
the best so far. The decay is a host-side decision between epochs
(:func:`plateau_update`), applied with :func:`set_learning_rate`.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax


def _chain(learning_rate, clip, name: str, weight_decay: float):
    parts = [optax.clip_by_global_norm(clip)] if clip > 0 else []
    if name == "sgd":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.sgd(learning_rate))
    elif name == "adam":
        parts.append(optax.adamw(learning_rate, weight_decay=weight_decay))
    else:
        raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")
    return optax.chain(*parts)


def make_optimizer(
    name: str = "sgd", lr: float = 20.0, clip: float = 0.25, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    """Global-norm clipping followed by SGD or Adam(W), learning rate injectable.

    Args:
      name: ``"sgd"`` (thesis default) or ``"adam"``.
      lr: initial learning rate (thesis: 20 for SGD).
      clip: global-norm clipping threshold (thesis: 0.25); 0 disables clipping.
      weight_decay: decoupled weight decay (0 by default).
    """
    if name not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")
    return optax.inject_hyperparams(
        lambda learning_rate: _chain(learning_rate, clip, name, weight_decay)
    )(learning_rate=lr)


def get_learning_rate(opt_state) -> float:
    """Current learning rate stored in an injected-hyperparameter state."""
    return float(opt_state.hyperparams["learning_rate"])


def set_learning_rate(opt_state, lr: float):
    """A copy of ``opt_state`` with a new learning rate (same dtype, no retrace)."""
    old = opt_state.hyperparams["learning_rate"]
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(old).dtype)
    return opt_state._replace(hyperparams=hp)


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
