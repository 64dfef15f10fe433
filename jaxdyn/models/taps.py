"""Marking tensors for the trace, with Flax's own collections, and the model protocol.

**Taps.** A model marks a tensor for the trace inside its ``@nn.compact`` call:

* ``self.sow("intermediates", name, x)``: the activation ``x`` is captured;
* ``x = self.perturb(name, x)``: the gradient of the loss with respect to ``x``
  is captured (Flax adds a zero ``perturbations`` variable to ``x``; the train
  step differentiates the loss with respect to it in the same backward pass);
* ``x = tap(self, name, x)`` does both.

Trace names are the tap paths joined by ``"/"``: a tap ``"h"`` in a submodule
``Block_0`` is ``"Block_0/h"``; taps made by the top-level module have their bare
name. Tapped tensors are samples-first ``(B, T, D)`` (the batch's ``(B, T)``
followed by one feature axis). Tap each tensor once per call (a second tap of the
same name in the same module is an error in the trace). Without the collections
(plain ``model.apply({"params": p}, x)``), ``sow`` and ``perturb`` are no-ops, so
a step that captures nothing compiles exactly the untapped model.

**Model protocol.** A model is any Flax linen module called as
``model.apply(variables, inputs, train=train)`` returning logits ``(B, T, K)``
(``train=True`` applies dropout from the ``"dropout"`` rng), initialisable by
``model.init(key, zeros((B, 1), int32))``. A *recurrent* model (one whose state
is carried across BPTT chunks) also has a method
``initial_carry(params, batch_size) -> carry`` (mark it ``@nn.nowrap``), is called
as ``model.apply(variables, inputs, carry, train=train)`` and returns
``(logits, new_carry)``; ``carry=None`` must mean the initial state (used by
``init``). :class:`jaxdyn.models.LSTMSequenceModel` implements it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax

#: Flax collections the taps write to.
ACTIVATIONS = "intermediates"
PERTURBATIONS = "perturbations"


def tap(module: nn.Module, name: str, x: jax.Array) -> jax.Array:
    """Mark ``x`` for the trace: its activation and its loss gradient.

    Call inside a bound module's ``@nn.compact`` method and use the returned value
    downstream (the gradient is taken with respect to it).

    Args:
      module: the calling module (``self``).
      name: the tensor's name within the module (trace name: module path + name).
      x: ``(B, T, D)`` tensor.

    Returns:
      ``x`` (plus a zero perturbation when activation gradients are captured).
    """
    x = module.perturb(name, x, collection=PERTURBATIONS)
    module.sow(ACTIVATIONS, name, x)
    return x


def flat_names(tree: Mapping[str, Any] | None, *, sown: bool) -> dict[str, jax.Array]:
    """A tapped collection (nested by module path) as ``{"path/name": array}``.

    Args:
      tree: the ``intermediates`` (``sown=True``: each value a tuple of sown
        arrays) or ``perturbations`` collection; None is empty.
      sown: whether the values are ``sow`` tuples.

    Raises:
      ValueError: a name was sown more than once in one call.
    """
    out: dict[str, jax.Array] = {}

    def walk(node, prefix):
        for key, v in node.items():
            name = f"{prefix}{key}"
            if isinstance(v, Mapping):
                walk(v, name + "/")
            elif sown:
                if not isinstance(v, tuple) or len(v) != 1:
                    n = len(v) if isinstance(v, tuple) else "an unexpected"
                    raise ValueError(
                        f"tensor {name!r} was tapped {n} times in one call; give each "
                        "tap its own name (e.g. f'h_{t}')"
                    )
                out[name] = v[0]
            else:
                out[name] = v

    walk(tree or {}, "")
    return out


def is_recurrent(model: Any) -> bool:
    """Whether ``model`` follows the recurrent protocol (has ``initial_carry``)."""
    return callable(getattr(model, "initial_carry", None))


def initial_carry(model: Any, params: Any, batch_size: int) -> Any:
    """The model's initial carry for ``batch_size`` rows, or None for a model without one."""
    return model.initial_carry(params, batch_size) if is_recurrent(model) else None


def apply_model(
    model: Any,
    variables: Mapping[str, Any],
    inputs: jax.Array,
    carry: Any,
    *,
    train: bool,
    rngs: Mapping[str, jax.Array] | None = None,
    mutable: list[str] | bool = False,
) -> tuple[jax.Array, Any, dict[str, Any]]:
    """Call a model by the protocol above.

    Args:
      model: a Flax module (recurrent or not).
      variables: ``{"params": ...}`` and optionally ``{"perturbations": ...}``.
      inputs: ``(B, T)`` int ids.
      carry: the recurrent state (ignored for a model without one).
      train: training mode (dropout).
      rngs: Flax rngs (``"dropout"`` when training).
      mutable: collections to return (e.g. ``["intermediates"]``).

    Returns:
      ``(logits (B, T, K), new_carry or None, collections)`` where ``collections``
      holds the mutable collections (empty without ``mutable``).
    """
    recurrent = is_recurrent(model)
    args = (inputs, carry) if recurrent else (inputs,)
    out = model.apply(variables, *args, train=train, rngs=rngs or {}, mutable=mutable)
    cols: dict[str, Any] = {}
    if mutable:
        out, cols = out
        cols = dict(cols)
    if recurrent:
        if not (isinstance(out, tuple) and len(out) >= 2):
            raise ValueError(
                f"{type(model).__name__} has initial_carry, so it must return "
                f"(logits, new_carry); got {type(out).__name__}"
            )
        return out[0], out[1], cols
    return out, None, cols
