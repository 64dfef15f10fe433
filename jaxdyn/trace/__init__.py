"""Trace capture: what a step records (:class:`CaptureSpec`) and the trace layout."""

from jaxdyn.trace.records import batch_means, build_trace, flatten_acts, reduce_tokens
from jaxdyn.trace.spec import LSTM_PARTS, MODULES, CaptureSpec, name_matches

__all__ = [
    "LSTM_PARTS",
    "MODULES",
    "CaptureSpec",
    "batch_means",
    "build_trace",
    "flatten_acts",
    "name_matches",
    "reduce_tokens",
]
