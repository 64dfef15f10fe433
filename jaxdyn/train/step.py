"""Jitted train, evaluation and analysis steps that emit traces, for any tapped Flax model.

``make_train_step(model, tx, spec)`` returns ``step(state, batch) -> (state,
metrics, trace)``. Without a spec the trace is ``None`` and no capture code is
compiled; with one, the step also differentiates the loss with respect to the
zero ``perturbations`` the model adds to its tapped tensors
(``jaxdyn.models.taps``), so the gradients a PyTorch backward hook would see
come out of the same backward pass, collects the tensors it sowed, reduces them
on device, and returns the trace documented in ``jaxdyn.trace.records``. The
trace's names are the model's tap names. Capture never changes the update: the
perturbations are zeros and the parameter gradient is the same expression.

Models follow the protocol in ``jaxdyn.models.taps`` (recurrent ones carry a
state across chunks, others are called without one). A batch is a dict:
``inputs (B, T) int32``, ``targets (B, T) int32`` and optionally ``mask (B, T)
bool`` (positions that count towards the loss).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from jaxdyn.models.taps import ACTIVATIONS, PERTURBATIONS, apply_model, flat_names
from jaxdyn.trace.records import build_trace
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.optim import learning_rate_of
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


def _zeros_like_tree(shapes):
    return jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)


def _loss_and_grads(model, params, carry, batch, rng, *, train: bool, spec: CaptureSpec | None):
    """Loss, gradients and (optionally) activations/activation gradients."""
    mask = _mask(batch)
    rngs = {"dropout": rng} if train else {}
    capture_grads = spec is not None and spec.act_grads
    capture_acts = spec is not None and spec.activations
    mutable = [ACTIVATIONS] if capture_acts else False

    def forward(variables, mutable):
        return apply_model(
            model, variables, batch["inputs"], carry, train=train, rngs=rngs, mutable=mutable
        )

    def loss_fn(p, pert):
        variables = {"params": p} if pert is None else {"params": p, PERTURBATIONS: pert}
        logits, new_carry, cols = forward(variables, mutable)
        loss, total, count = masked_xent(logits, batch["targets"], mask)
        return loss, (new_carry, cols.get(ACTIVATIONS), total, count)

    if spec is not None:
        # the tapped names and shapes, from an abstract forward pass (trace time only)
        tapped = jax.eval_shape(lambda p: forward({"params": p}, [PERTURBATIONS]), params)[2]
        pert_shapes = tapped.get(PERTURBATIONS, {})
    if capture_grads:
        pert = _zeros_like_tree(pert_shapes)
        (loss, aux), (grads, pert_grads) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True
        )(params, pert)
        act_grads = flat_names(pert_grads, sown=False)
    else:
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, None)
        act_grads = None
    new_carry, sown, total, count = aux
    trace = None
    if spec is not None:
        acts = flat_names(sown, sown=True) if capture_acts else None
        spec.check_tapped(acts or {}, flat_names(pert_shapes, sown=False))
        trace = build_trace(spec, batch, mask, acts, act_grads, grads if spec.param_grads else None)
    return loss, grads, jax.lax.stop_gradient(new_carry), trace, total, count


def make_train_step(model, tx: optax.GradientTransformation, spec: CaptureSpec | None = None):
    """A jitted ``step(state, batch) -> (state, metrics, trace)``.

    Args:
      model: a Flax module following ``jaxdyn.models.taps``'s protocol (e.g. the
        LSTM language model or tagger, or any model that taps its tensors).
      tx: any Optax transformation (e.g. ``optax.adam(1e-3)`` or
        ``jaxdyn.train.optim.make_optimizer``).
      spec: what to capture; None compiles a step without any trace.

    Returns:
      The jitted step; ``metrics`` holds ``loss``, ``grad_norm`` (before
      clipping), ``tokens`` and, when the optimizer state exposes an injected
      ``learning_rate`` (``optax.inject_hyperparams``), ``lr``; ``trace`` is None
      without a spec.

    Raises (when first called):
      ValueError: the spec asks for a tensor kind or name the model never tapped.
    """

    def step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        loss, grads, carry, trace, _, count = _loss_and_grads(
            model, state.params, state.carry, batch, rng, train=True, spec=spec
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "tokens": count}
        lr = learning_rate_of(opt_state)
        if lr is not None:
            metrics["lr"] = lr
        new_state = state._replace(
            step=state.step + 1, params=params, opt_state=opt_state, carry=carry
        )
        return new_state, metrics, trace

    return jax.jit(step, donate_argnums=())


def make_eval_step(model):
    """A jitted ``eval_step(params, carry, batch) -> (loss_sum, count, carry)`` (no dropout).

    ``carry`` is None (in and out) for a model without a recurrent state.
    """

    def eval_step(params, carry, batch):
        logits, carry, _ = apply_model(
            model, {"params": params}, batch["inputs"], carry, train=False
        )
        _, total, count = masked_xent(logits, batch["targets"], _mask(batch))
        return total, count, carry

    return jax.jit(eval_step)


def make_analysis_step(model, spec: CaptureSpec):
    """A jitted ``analyse(params, carry, batch) -> (metrics, trace, carry)``.

    Evaluation mode (no dropout, no update): the forward activations and the
    backward signals of a fixed checkpoint on held-out text, for the analyses.
    ``carry`` is None for a model without a recurrent state.
    """

    def analyse(params, carry, batch):
        loss, _grads, carry, trace, total, count = _loss_and_grads(
            model, params, carry, batch, jax.random.PRNGKey(0), train=False, spec=spec
        )
        return {"loss": loss, "loss_sum": total, "tokens": count}, trace, carry

    return jax.jit(analyse)
