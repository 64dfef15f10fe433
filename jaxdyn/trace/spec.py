"""What a train or analysis step captures: :class:`CaptureSpec`."""

from __future__ import annotations

import dataclasses

#: Module outputs the built-in LSTM taps (``lstm`` matches ``lstm_{l}`` of every layer).
MODULES = ("embedding", "lstm", "decoder_in", "logits")
#: LSTM internals captured besides a layer's output ``h`` (names ``lstm_{l}.{part}``).
LSTM_PARTS = ("c", "i", "f", "g", "o")
#: Characters that end a name segment (``lstm`` + ``_`` + ``1`` + ``.`` + ``f``).
SEPARATORS = "_./"


def name_matches(name: str, pattern: str) -> bool:
    """Whether trace name ``name`` is ``pattern`` or lies under it by name segment.

    ``pattern`` matches ``name`` when they are equal or when ``name`` continues
    ``pattern`` with a separator (``_``, ``.`` or ``/``): ``"lstm"`` matches
    ``lstm_0`` and ``lstm_1.f``, ``"lstm_1"`` matches ``lstm_1.f`` but not
    ``lstm_10``, ``"Block_0"`` matches ``Block_0/h``.
    """
    return name == pattern or (name.startswith(pattern) and name[len(pattern)] in SEPARATORS)


@dataclasses.dataclass(frozen=True)
class CaptureSpec:
    """Frozen, hashable description of a trace (safe as a static jit argument).

    Attributes:
      every: capture on steps where ``step % every == 0`` (the host loop decides;
        steps without capture run a separately compiled step with no trace code).
      activations: capture forward outputs of every module (and the LSTM gates).
      activations: capture every tensor the model sows (``jaxdyn.models.taps``;
        the LSTM: every module output and its gates).
      act_grads: capture gradients of the loss with respect to every tensor the
        model perturbs (the LSTM: ``embedding``, ``lstm_{l}``, ``decoder_in``,
        ``logits``): the signal a PyTorch backward hook on that module would see.
        The gradient of ``lstm_{l}`` is taken with respect to the layer's output
        sequence as the next module consumes it, not through the recurrence.
      gates: with ``activations``, include names with a ``.`` (internals: the
        LSTM's ``lstm_{l}.c`` and gates ``lstm_{l}.i/f/g/o``).
      param_grads: capture the gradient of every parameter (same tree as params).
      modules: restrict captured names to these, each an exact name (``"lstm_0"``,
        ``"lstm_0.f"``) or a name prefix by segment (``"lstm"`` matches
        ``lstm_0`` and ``lstm_1.f``; ``"lstm_1"`` does not match ``lstm_10``; see
        :func:`name_matches`); None = all. Every entry must match a tapped name
        (the step raises otherwise, naming the tapped ones).
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
        return any(name_matches(name, m) for m in self.modules)

    def check_tapped(self, act_names, grad_names) -> None:
        """Raise if this spec asks for something the model did not tap.

        Args:
          act_names: trace names the model sowed (activations).
          grad_names: trace names the model perturbed (activation gradients).

        Raises:
          ValueError: activations or gradients requested but nothing of that kind
            is tapped, or a ``modules`` entry matches no tapped name.
        """
        if not (self.activations or self.act_grads):
            return
        act_names, grad_names = sorted(act_names), sorted(grad_names)
        how = (
            "tap tensors with jaxdyn.models.taps.tap(self, name, x) (or self.sow("
            "'intermediates', name, x) / self.perturb(name, x)) inside the model"
        )
        if self.activations and not act_names:
            raise ValueError(
                f"CaptureSpec asks for activations but the model sows none; {how}, "
                "or set activations=False"
            )
        if self.act_grads and not grad_names:
            raise ValueError(
                f"CaptureSpec asks for act_grads but the model perturbs no tensor; {how}, "
                "or set act_grads=False"
            )
        tapped = sorted(
            set(act_names if self.activations else ()) | set(grad_names if self.act_grads else ())
        )
        missing = [m for m in self.modules or () if not any(name_matches(n, m) for n in tapped)]
        if missing:
            raise ValueError(
                f"CaptureSpec.modules {missing} match no tapped tensor; tapped: {tapped}"
            )
