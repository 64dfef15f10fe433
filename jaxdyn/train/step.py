"""Jitted train, evaluation and analysis steps that emit traces.

``make_train_step(model, tx, spec)`` returns ``step(state, batch) -> (state,
metrics, trace)``. Without a spec the trace is ``None`` and no capture code is
compiled; with one, the step also differentiates the loss with respect to zero
perturbations added to every module output (so the gradients a PyTorch backward
hook would see come out of the same backward pass), reduces the captured tensors
on device, and returns the trace documented in ``jaxdyn.trace.records``.
Capture never changes the update: the perturbations are zeros and the
parameter gradient is the same expression.

A batch is a dict: ``inputs (B, T) int32``, ``targets (B, T) int32`` and
optionally ``mask (B, T) bool`` (positions that count towards the loss).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from jaxdyn.trace.records import build_trace
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.state import TrainState


def _mask(batch: Mapping[str, jax.Array]) -> jax.Array:
    m = batch.get("mask")
    return jnp.ones(batch["inputs"].shape, bool) if m is None else m.astype(bool)


def masked_xent(logits: jax.Array, targets: jax.Array, mask: jax.Array):
    """Mean token cross-entropy over ``mask``; returns ``(mean, sum, count)``.

    Args:
      logits: ``(B, T, K)``; targets: ``(B, T)`` int; mask: ``(B, T)`` bool.
    """
    nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    m = mask.astype(jnp.float32)
    total, count = (nll * m).sum(), m.sum()
    return total / jnp.maximum(count, 1.0), total, count


def _zero_perturbations(model, batch_shape):
    b, t = batch_shape
    pert = {"embedding": jnp.zeros((b, t, model.emb_dim))}
    for l in range(model.num_layers):
        pert[f"lstm_{l}"] = jnp.zeros((b, t, model.hidden))
    pert["decoder_in"] = jnp.zeros((b, t, model.hidden))
    pert["logits"] = jnp.zeros((b, t, model.num_outputs))
    return pert


def _loss_and_grads(model, params, carry, batch, rng, *, train: bool, spec: CaptureSpec | None):
    """Loss, gradients and (optionally) activations/activation gradients."""
    mask = _mask(batch)
    rngs = {"dropout": rng} if train else {}
    capture_grads = spec is not None and spec.act_grads
    capture_acts = spec is not None and spec.activations

    def loss_fn(p, pert):
        out = model.apply(
            {"params": p},
            batch["inputs"],
            carry,
            train=train,
            return_acts=capture_acts,
            return_gates=capture_acts and spec.gates,
            perturbations=pert,
            rngs=rngs,
        )
        logits, new_carry = out[0], out[1]
        acts = out[2] if capture_acts else None
        loss, total, count = masked_xent(logits, batch["targets"], mask)
        return loss, (new_carry, acts, total, count)

    if capture_grads:
        pert = _zero_perturbations(model, batch["inputs"].shape)
        (loss, aux), (grads, act_grads) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            params, pert
        )
    else:
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, None)
        act_grads = None
    new_carry, acts, total, count = aux
    trace = None
    if spec is not None:
        trace = build_trace(spec, batch, mask, acts, act_grads, grads if spec.param_grads else None)
    return loss, grads, jax.lax.stop_gradient(new_carry), trace, total, count


def make_train_step(model, tx: optax.GradientTransformation, spec: CaptureSpec | None = None):
    """A jitted ``step(state, batch) -> (state, metrics, trace)``.

    Args:
      model: an ``LSTMSequenceModel`` (language model or tagger).
      tx: Optax transformation (see ``jaxdyn.train.optim.make_optimizer``).
      spec: what to capture; None compiles a step without any trace.

    Returns:
      The jitted step; ``metrics`` holds ``loss``, ``grad_norm`` (before clipping),
      ``lr`` and ``tokens``; ``trace`` is None without a spec.
    """

    def step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        loss, grads, carry, trace, _, count = _loss_and_grads(
            model, state.params, state.carry, batch, rng, train=True, spec=spec
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "lr": opt_state.hyperparams["learning_rate"],
            "tokens": count,
        }
        new_state = state._replace(
            step=state.step + 1, params=params, opt_state=opt_state, carry=carry
        )
        return new_state, metrics, trace

    return jax.jit(step, donate_argnums=())


def make_eval_step(model):
    """A jitted ``eval_step(params, carry, batch) -> (loss_sum, count, carry)`` (no dropout)."""

    def eval_step(params, carry, batch):
        out = model.apply({"params": params}, batch["inputs"], carry)
        _, total, count = masked_xent(out[0], batch["targets"], _mask(batch))
        return total, count, out[1]

    return jax.jit(eval_step)


def make_analysis_step(model, spec: CaptureSpec):
    """A jitted ``analyse(params, carry, batch) -> (metrics, trace, carry)``.

    Evaluation mode (no dropout, no update): the forward activations and the
    backward signals of a fixed checkpoint on held-out text, for the analyses.
    """

    def analyse(params, carry, batch):
        loss, _grads, carry, trace, total, count = _loss_and_grads(
            model, params, carry, batch, jax.random.PRNGKey(0), train=False, spec=spec
        )
        return {"loss": loss, "loss_sum": total, "tokens": count}, trace, carry

    return jax.jit(analyse)
