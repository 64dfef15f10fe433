"""Training state: a pytree of everything a step needs and a checkpoint saves."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdyn.models.taps import initial_carry


class TrainState(NamedTuple):
    """Everything that changes during training, as one pytree.

    Attributes:
      step: int32 scalar, number of optimizer steps taken.
      params: the model's ``params`` collection.
      opt_state: state of any Optax transformation.
      rng: raw ``uint32[2]`` PRNG key; step ``s`` uses ``fold_in(rng, s)``.
      carry: recurrent state carried across BPTT chunks (the model's
        ``initial_carry``, see ``jaxdyn.models.taps``; for the LSTM a tuple over
        layers of ``(h, c)``, each ``(B, H)``), reset at the start of each epoch;
        None for a model without one.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    carry: Any


def zero_like_carry(carry):
    """A carry of zeros with the same structure and shapes."""
    return jax.tree_util.tree_map(jnp.zeros_like, carry)


def init_train_state(
    model, tx: optax.GradientTransformation, seed: int, batch_size: int, *, params=None
):
    """Initialise parameters (from ``seed``), optimizer state and the initial carry.

    Args:
      model: a Flax module following ``jaxdyn.models.taps``'s protocol.
      tx: any Optax transformation.
      seed: integer seed; parameters use ``fold_in(key, 0)``, dropout ``fold_in(key, 1)``.
      batch_size: B of the training batches (shapes the carry).
      params: use these parameters instead of initialising (e.g. shared init).
    """
    key = jax.random.PRNGKey(seed)
    if params is None:
        dummy = jnp.zeros((batch_size, 1), jnp.int32)
        params = model.init(jax.random.fold_in(key, 0), dummy)["params"]
    carry = initial_carry(model, params, batch_size)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.fold_in(key, 1),
        carry=carry,
    )
