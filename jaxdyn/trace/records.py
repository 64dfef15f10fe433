"""The trace pytree: the contract between training and analysis.

A captured step returns ``trace``, a dict with these keys (all arrays on device;
names of activations are flat, so every entry is one ``(B, T, D)`` tensor)::

    trace["inputs"], trace["targets"]      (B, T) int32: the batch
    trace["mask"]                          (B, T) bool: which positions count
    trace["act"][name]                     (B, T, D)  only with keep_full
    trace["act_grad"][name]                (B, T, D)  only with keep_full
    trace["param_grad"]                    params tree, only with param_grads
    trace["reduced"]["act"][name][stat]      (B, T)
    trace["reduced"]["act_grad"][name][stat] (B, T)
    trace["reduced"]["param_grad"][path]     {"l1", "l2", "te"} scalars per parameter

Names are what the model tapped (``jaxdyn.models.taps``): activations are the
tensors it sowed into ``intermediates``, gradients those it perturbed, each named
by its tap path joined with ``/`` (a top-level tap has its bare name). For the
built-in LSTM (all taps at the top level): activations ``embedding`` (encoder
output, before dropout), ``lstm_{l}`` (layer l's output h, before dropout),
``lstm_{l}.c`` and the gates ``lstm_{l}.i``, ``.f``, ``.g``, ``.o``,
``decoder_in`` (decoder input, after dropout), ``logits`` (decoder output);
gradients ``embedding``, ``lstm_{l}``, ``decoder_in``, ``logits``. Statistics
``stat`` are the ``CaptureSpec.reductions`` names. Analysis kernels take plain
arrays; the small adapters here pick them out of a trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxdyn.trace.spec import CaptureSpec


def flatten_acts(acts: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Model activation dict -> flat names (``lstm_0`` is h, ``lstm_0.f`` a gate)."""
    flat = {}
    for name, v in acts.items():
        if isinstance(v, Mapping):
            for part, arr in v.items():
                flat[name if part == "h" else f"{name}.{part}"] = arr
        else:
            flat[name] = v
    return flat


def reduce_tokens(tensors: Mapping[str, jax.Array], reductions: tuple[str, ...]) -> dict:
    """Per-token statistics of every ``(B, T, D)`` tensor: ``{name: {stat: (B, T)}}``."""
    from jaxdyn.analysis.sparsity import token_statistics

    return {name: token_statistics(x, names=reductions) for name, x in tensors.items()}


def param_grad_summary(grads: Any) -> dict[str, dict[str, jax.Array]]:
    """L1, L2 and taxi-Euclidean ratio of every parameter's gradient (scalars)."""
    from jaxdyn.analysis.sparsity import token_statistics

    out = {}
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        key = "/".join(str(getattr(p, "key", p)) for p in path)
        out[key] = token_statistics(g.reshape(-1), names=("l1", "l2", "te"))
    return out


def _check_token_shapes(tensors: Mapping[str, jax.Array], bt: tuple[int, ...], what: str):
    for name, x in tensors.items():
        if x.ndim != 3 or tuple(x.shape[:2]) != tuple(bt):
            raise ValueError(
                f"tapped {what} {name!r} has shape {tuple(x.shape)}; the trace needs "
                f"samples-first (B, T, D) = {(*bt, 'D')} tensors"
            )


def build_trace(
    spec: CaptureSpec,
    batch: Mapping[str, jax.Array],
    mask: jax.Array,
    acts: Mapping[str, Any] | None,
    act_grads: Mapping[str, jax.Array] | None,
    param_grads: Any | None,
) -> dict[str, Any]:
    """Assemble the trace of one step according to ``spec`` (runs inside jit).

    Args:
      spec: what to keep.
      batch: ``inputs``/``targets`` ``(B, T)``.
      mask: ``(B, T)`` bool.
      acts: tapped activations by trace name (or the LSTM's nested ``return_acts``
        dict), each ``(B, T, D)``; None when not captured.
      act_grads: gradients by trace name, each ``(B, T, D)``; None when not captured.
      param_grads: the parameter-gradient tree, or None.

    Raises:
      ValueError: a kept tensor does not start with the batch's ``(B, T)``.
    """
    trace: dict[str, Any] = {"inputs": batch["inputs"], "targets": batch["targets"], "mask": mask}
    reduced: dict[str, Any] = {}
    if spec.activations and acts is not None:
        flat = {k: v for k, v in flatten_acts(acts).items() if spec.wants(k)}
        _check_token_shapes(flat, mask.shape, "activation")
        reduced["act"] = reduce_tokens(flat, spec.reductions)
        if spec.keep_full:
            trace["act"] = flat
    if spec.act_grads and act_grads is not None:
        grads = {k: v for k, v in act_grads.items() if spec.wants(k)}
        _check_token_shapes(grads, mask.shape, "activation gradient")
        reduced["act_grad"] = reduce_tokens(grads, spec.reductions)
        if spec.keep_full:
            trace["act_grad"] = grads
    if spec.param_grads and param_grads is not None:
        trace["param_grad"] = param_grads
        reduced["param_grad"] = param_grad_summary(param_grads)
    trace["reduced"] = reduced
    return trace


def batch_means(trace: Mapping[str, Any]) -> dict[str, float | jax.Array]:
    """Masked batch means of every reduced per-token statistic, flat keys ``dir/name/stat``."""
    mask = trace["mask"].astype(jnp.float32)
    denom = jnp.maximum(mask.sum(), 1.0)
    out = {}
    for direction in ("act", "act_grad"):
        for name, stats in trace["reduced"].get(direction, {}).items():
            for stat, v in stats.items():
                out[f"{direction}/{name}/{stat}"] = (v * mask).sum() / denom
    return out
