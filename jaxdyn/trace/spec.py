"""What a train or analysis step captures: :class:`CaptureSpec`."""

from __future__ import annotations

import dataclasses

#: Module outputs every model exposes (``lstm_{l}`` is expanded per layer).
MODULES = ("embedding", "lstm", "decoder_in", "logits")
#: LSTM internals captured besides a layer's output ``h`` (names ``lstm_{l}.{part}``).
LSTM_PARTS = ("c", "i", "f", "g", "o")


@dataclasses.dataclass(frozen=True)
class CaptureSpec:
    """Frozen, hashable description of a trace (safe as a static jit argument).

    Attributes:
      every: capture on steps where ``step % every == 0`` (the host loop decides;
        steps without capture run a separately compiled step with no trace code).
      activations: capture forward outputs of every module (and the LSTM gates).
      act_grads: capture gradients of the loss with respect to each module's
        output (``embedding``, ``lstm_{l}``, ``decoder_in``, ``logits``): the
        signal a PyTorch backward hook on that module would see. The gradient of
        ``lstm_{l}`` is taken with respect to the layer's output sequence as the
        next module consumes it, not through the recurrence.
      gates: with ``activations``, include ``lstm_{l}.c`` and the gates
        ``lstm_{l}.i/f/g/o``.
      param_grads: capture the gradient of every parameter (same tree as params).
      modules: restrict captured activation names to these (exact names such as
        ``"lstm_0"`` or ``"lstm_0.f"``, or a prefix like ``"lstm"``); None = all.
      reductions: per-token statistics computed on device for every captured
        tensor, names from ``jaxdyn.analysis.sparsity.STATISTICS`` (e.g. ``"l1"``,
        ``"l2"``, ``"te"``, ``"gini"``, ``"hoyer"``, ``"zero_frac"``).
      keep_full: keep the full ``(B, T, D)`` tensors in the trace; otherwise only
        the reductions (``(B, T)`` each) and scalar summaries leave the step.
    """

    every: int = 1
    activations: bool = True
    act_grads: bool = True
    gates: bool = True
    param_grads: bool = False
    modules: tuple[str, ...] | None = None
    reductions: tuple[str, ...] = ("l1", "l2")
    keep_full: bool = False

    def __post_init__(self):
        # a bare string is one name, not a tuple of its characters ("lstm" would
        # otherwise match every name starting with l, s, t or m, logits included)
        if isinstance(self.modules, str):
            object.__setattr__(self, "modules", (self.modules,))
        if isinstance(self.reductions, str):
            object.__setattr__(self, "reductions", (self.reductions,))
        if self.every < 1:
            raise ValueError(f"CaptureSpec.every must be >= 1, got {self.every}")
        from jaxdyn.analysis.sparsity import STATISTICS

        unknown = [r for r in self.reductions if r not in STATISTICS]
        if unknown:
            raise ValueError(f"unknown reductions {unknown}; choose from {sorted(STATISTICS)}")
        if self.modules is not None and not isinstance(self.modules, tuple):
            object.__setattr__(self, "modules", tuple(self.modules))
        if not isinstance(self.reductions, tuple):
            object.__setattr__(self, "reductions", tuple(self.reductions))

    def should_capture(self, step: int) -> bool:
        """Whether the step with this (0-based) index is captured."""
        return step % self.every == 0

    def wants(self, name: str) -> bool:
        """Whether the activation ``name`` (e.g. ``"lstm_1.f"``) is captured."""
        if "." in name and not self.gates:
            return False
        if self.modules is None:
            return True
        return any(name == m or name.startswith(m) for m in self.modules)
