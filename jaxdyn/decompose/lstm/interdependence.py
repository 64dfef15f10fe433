"""Decompositional interdependence (DI) of position or span pairs from contextual decomposition.

``DI(A, B) = ||beta_{A|B} - beta_A - beta_B||_2 / ||beta_{A|B}||_2`` at a target
timestep (:func:`jaxdyn.analysis.interactions.di_ratio`): the share of the joint
relevant contribution of the parts ``A`` and ``B`` that is not additive. A part is a
single position (the word pairs of Saphra & Lopez 2020) or a contiguous span (e.g. an
open bracket and its conduit). ``beta`` is CD's relevant part
(:mod:`jaxdyn.decompose.lstm.cd`, same conventions) of a layer's hidden state (hidden
space) or of the top layer's ``W_dec beta_h`` (logit space; the decoder bias is not
part of beta).

Choices:

* **Guard**: ``beta_{A|B} = 0`` gives ``DI = 0`` (e.g. both parts empty, after the
  target, or padding), never NaN.
* **Empty part**: a position ``-1`` (span ``[-1, -1]``) is the empty set, so
  ``beta_{A|{}} = beta_A`` and ``DI(A, {}) = 0`` exactly.
* **Beta-only recursion**: DI needs only beta. Its recursion
  (``beta_c = i_r (g_r + g_b) + i_b g_r + (f_r + f_b) beta_c_prev [+ i_b g_b]``,
  ``beta_h = o tanh_r(c)``) uses the irrelevant part only through
  ``r + i + b`` and ``i + b``, which equal the forward pre-activation ``a`` and
  ``a - r`` by CD's completeness, and ``gamma_c = c - beta_c``. So each span
  costs one ``H x 4H`` product per step (the full CD needs two) while the forward
  pass is shared by all spans of a sentence. Tests check it against the full CD.
* **Schedules, chosen by the ``schedule`` argument** (never by inspecting the inputs):
  ``"packed"`` (default; :mod:`jaxdyn.decompose.lstm.di_packed`) builds a host-side
  schedule from the concrete pairs, targets and lengths: beta is exactly 0 before a
  set's first position, so each distinct set (``A``, ``B``, ``A | B``; parts shared
  by all pairs of a sentence) runs only from its first position to the last target
  that reads it, and a union is forked from its first part's state where they start
  to differ; all sets are packed into lanes and run as one scan per phase. It raises
  a ValueError naming ``schedule`` if those inputs are traced. ``"dense"``
  (:mod:`jaxdyn.decompose.lstm.di_dense`) scans every set over all ``T`` steps with
  fixed shapes: use it under an outer ``jax.jit``/``jax.vmap`` with traced pairs.
  Both give the same values up to rounding (tests check both against the references).
* **Parts** (``parts=True``): the kernels also return ``beta_A``, ``beta_B``,
  ``beta_{A|B}`` in the requested space and the forward pass's output at the target
  (``h``, or the logits with the decoder bias), so a study needs no second forward
  pass. Several spaces in one call (``space=("hidden", "logits")``) share the scans.

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Eq. 1 (interdependence); Saphra (2021), PhD thesis, Edinburgh; Murdoch, Liu & Yu
  (2018), ICLR, Eqs. 8-19 (CD).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.decompose.lstm._checks import (
    as_int,
    check_batch_shapes,
    check_inputs,
    check_pairs,
    one_sentence,
    require_host,
)
from jaxdyn.decompose.lstm.cd import SPAN_BIAS
from jaxdyn.decompose.lstm.di_dense import di_batch_jit, span_beta_jit
from jaxdyn.decompose.lstm.di_packed import di_packed
from jaxdyn.decompose.lstm.forward import zero_carry_single

SPACES = ("hidden", "logits")
SCHEDULES = ("packed", "dense")


class DIParts(NamedTuple):
    """DI of pairs with the parts it is computed from, read at the targets.

    Attributes:
      di: ``(..., P)`` DI values.
      beta_x, beta_y, beta_xy: ``(..., P, D)`` relevant parts of ``A``, ``B`` and
        ``A | B``: ``beta_h`` of ``layer`` in hidden space (``D = H``), ``W_dec beta_h``
        without the decoder bias in logit space (``D = K``, rows ``logit_ids``).
      output: ``(..., P, D)`` the forward pass at the target: ``h`` of ``layer``
        (hidden space) or the logits ``W_dec h + b`` (logit space), i.e. the full
        model's prediction.
    """

    di: jax.Array
    beta_x: jax.Array
    beta_y: jax.Array
    beta_xy: jax.Array
    output: jax.Array


def _resolve(params, space, layer, span_bias, mask_chunk, schedule):
    if mask_chunk is not None and (not isinstance(mask_chunk, int | np.integer) or mask_chunk < 1):
        raise ValueError(f"mask_chunk must be a positive int or None, got {mask_chunk!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    spaces = (space,) if isinstance(space, str) else tuple(space)
    if not spaces or any(s not in SPACES for s in spaces) or len(set(spaces)) < len(spaces):
        raise ValueError(f"space must be one of {SPACES} or a tuple of them, got {space!r}")
    if span_bias not in SPAN_BIAS:
        raise ValueError(f"span_bias must be one of {SPAN_BIAS}, got {span_bias!r}")
    n_layers = len(params["rnn"])
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must lie in [-{n_layers}, {n_layers}), got {layer}")
    layer %= n_layers
    if "logits" in spaces and layer != n_layers - 1:
        raise ValueError("space='logits' decomposes the top layer; leave layer at -1")
    return spaces, layer


def interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: int | jax.Array,
    *,
    space: str | tuple[str, ...] = "hidden",
    layer: int = -1,
    length: int | jax.Array | None = None,
    init_carry=None,
    logit_ids: jax.Array | None = None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
    mask_chunk: int | None = None,
    schedule: str = "packed",
    parts: bool = False,
):
    """DI of ``P`` position or span pairs of one sentence in one compiled call.

    Args:
      params: LSTM LM/tagger ``params`` (layout of :mod:`jaxdyn.models.lstm`).
      tokens: ``(T,)`` int ids.
      pairs: ``(P, 2)`` int positions ``(x, y)`` (``-1`` is the empty set), or
        ``(P, 2, 2)`` inclusive spans ``[[a_lo, a_hi], [b_lo, b_hi]]`` (``[-1, -1]``
        empty; a position ``x`` is the span ``[x, x]``).
      target: timestep (int) or ``(P,)`` timesteps at which ``beta`` is read.
      space: ``"hidden"`` (``beta_h`` of ``layer``), ``"logits"`` (``W_dec beta_h`` of
        the top layer, rows ``logit_ids`` if given), or a tuple of both (one
        computation, a dict of results).
      layer: LSTM layer for hidden space (negative counts from the top).
      length: valid length (padding after it); default ``T``.
      init_carry: per-layer ``(h (H,), c (H,))`` carried in (irrelevant).
      logit_ids: optional ``(K,)`` decoder rows for logit space.
      decompose_output_gate, span_bias, upper_bias_in_span: CD conventions
        (:func:`jaxdyn.decompose.lstm.cd.contextual_decomposition`).
      mask_chunk: bounds memory: lanes of the packed schedule (sets of the dense one)
        per chunk; default all at once.
      schedule: ``"packed"`` (default; needs concrete ``pairs``, ``target``, ``length``)
        or ``"dense"`` (fixed shapes; for traced inputs under ``jit``/``vmap``).
      parts: return :class:`DIParts` (DI, the parts and the forward output at the
        targets) instead of the DI values alone.

    Returns:
      ``(P,)`` DI values in ``[0, inf)`` (0 where ``beta_{A|B} = 0``), or
      :class:`DIParts` with ``parts``; for a tuple ``space``, a dict keyed by space.

    Raises:
      ValueError: bad shapes, positions or spans out of range, unknown options,
        ``schedule="packed"`` with traced pairs, target or length.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Murdoch et al. (2018), Eqs. 8-19.
    """
    tokens, pairs, target, lengths = one_sentence(tokens, pairs, target, length)
    if init_carry is not None:
        init_carry = jax.tree_util.tree_map(lambda z: jnp.asarray(z)[None], init_carry)
    out = interdependence_batch(
        params, tokens, pairs, target, lengths=lengths, init_carry=init_carry, space=space, layer=layer, logit_ids=logit_ids,
        decompose_output_gate=decompose_output_gate, span_bias=span_bias,
        upper_bias_in_span=upper_bias_in_span, mask_chunk=mask_chunk, schedule=schedule,
        parts=parts,
    )  # fmt: skip
    return jax.tree_util.tree_map(lambda v: v[0], out)


def interdependence_batch(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: jax.Array,
    *,
    lengths: jax.Array | None = None,
    init_carry=None,
    space: str | tuple[str, ...] = "hidden",
    layer: int = -1,
    logit_ids: jax.Array | None = None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
    mask_chunk: int | None = None,
    schedule: str = "packed",
    parts: bool = False,
):
    """DI for ``B`` padded sentences with ``P`` position or span pairs each, in one call.

    Args:
      params: as in :func:`interdependence`.
      tokens: ``(B, T)`` int ids; lengths: ``(B,)`` valid lengths (default ``T``).
      pairs: ``(B, P, 2)`` positions (``-1`` = empty; pad unused pairs with ``(-1, -1)``,
        which gives DI 0) or ``(B, P, 2, 2)`` inclusive spans
        ``[[a_lo, a_hi], [b_lo, b_hi]]`` (pad with ``[-1, -1]`` parts).
      target: ``(B, P)`` or ``(B,)`` timesteps.
      init_carry: per-layer ``(h (B, H), c (B, H))``; zeros if None.
      space, layer, logit_ids, decompose_output_gate, span_bias, upper_bias_in_span,
        mask_chunk, schedule, parts: as in :func:`interdependence`.

    Returns:
      ``(B, P)`` DI values, or :class:`DIParts` with leading axes ``(B, P)`` with
      ``parts``; for a tuple ``space``, a dict keyed by space.

    Raises:
      ValueError: as in :func:`interdependence`.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    tokens, pairs, target = as_int(tokens), as_int(pairs), as_int(target)
    check_batch_shapes(tokens, pairs)
    spaces, layer = _resolve(params, space, layer, span_bias, mask_chunk, schedule)
    b, t = tokens.shape
    spans = pairs.ndim == 4
    xp = np if isinstance(target, np.ndarray) else jnp
    target = xp.broadcast_to(target[:, None] if target.ndim == 1 else target, pairs.shape[:2])
    check_inputs(params, tokens, lengths, logit_ids)
    check_pairs(pairs, target, t, lengths, spans=spans)
    lengths = np.full((b,), t, np.int32) if lengths is None else as_int(lengths)
    flags = (decompose_output_gate, span_bias, upper_bias_in_span)
    ids = None if logit_ids is None else jnp.asarray(logit_ids)
    if schedule == "packed":
        host = require_host("packed", "schedule", pairs=pairs, target=target, lengths=lengths)
        out = di_packed(
            params, tokens, host["pairs"], host["target"], host["lengths"], init_carry, ids,
            spaces=spaces, layer=layer, flags=flags, parts=parts, chunk=mask_chunk,
        )  # fmt: skip
    else:
        xp = np if isinstance(pairs, np.ndarray) else jnp
        sp = pairs if spans else xp.repeat(pairs[..., None], 2, axis=-1)
        out = di_batch_jit(
            params, tokens, sp, target, lengths, init_carry, ids,
            spaces=spaces, layer=layer, flags=flags, mask_chunk=mask_chunk,
            singles=not spans, parts=parts,
        )  # fmt: skip
    res = {s: DIParts(*v) if parts else v[0] for s, v in zip(spaces, out)}
    return res[space] if isinstance(space, str) else res


def span_beta(
    params: Mapping[str, Any],
    tokens: jax.Array,
    masks: jax.Array,
    *,
    layer: int = -1,
    length: int | jax.Array | None = None,
    init_carry=None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
    mask_chunk: int | None = None,
) -> jax.Array:
    """Relevant hidden part ``beta_h`` of ``M`` spans of one sentence (beta-only recursion).

    Fixed shapes (every span over all ``T`` steps): jit/vmap-able in all arguments.

    Args:
      tokens: ``(T,)`` ids; masks: ``(M, T)`` bool spans (any position sets); other
        arguments as in :func:`interdependence`.

    Returns:
      ``(M, T, H)`` ``beta_h`` of ``layer`` (equal to
      :func:`jaxdyn.decompose.lstm.cd.contextual_decomposition`'s up to rounding).

    References:
      Murdoch et al. (2018), ICLR, Eqs. 8-19.
    """
    tokens, masks = as_int(tokens), jnp.asarray(masks, bool)
    if tokens.ndim != 1 or masks.ndim != 2 or masks.shape[1] != tokens.shape[0]:
        raise ValueError(f"need tokens (T,), masks (M, T); got {tokens.shape}, {masks.shape}")
    _, layer = _resolve(params, "hidden", layer, span_bias, mask_chunk, "dense")
    check_inputs(params, tokens, length)
    if init_carry is None:
        init_carry = zero_carry_single(params, params["encoder"]["weight"].dtype)
    length = jnp.asarray(tokens.shape[0] if length is None else length, jnp.int32)
    return span_beta_jit(
        params, tokens, masks, length, init_carry, layer=layer, mask_chunk=mask_chunk,
        flags=(decompose_output_gate, span_bias, upper_bias_in_span),
    )  # fmt: skip


def all_pairs(length: int, max_distance: int | None = None) -> np.ndarray:
    """All position pairs ``x < y < length`` with ``y - x <= max_distance``, ``(P, 2)`` int32."""
    x, y = np.triu_indices(length, k=1)
    keep = (y - x <= max_distance) if max_distance is not None else np.ones_like(x, bool)
    return np.stack([x[keep], y[keep]], axis=1).astype(np.int32)


def pairs_and_targets(n: int, max_distance: int | None, target) -> tuple[np.ndarray, np.ndarray]:
    """:func:`all_pairs` of a valid length ``n`` and the position each is read at.

    ``target``: ``"last"`` (``n - 1``), ``"pair_end"`` (each pair's ``y``) or an int
    position (pairs with ``y > target`` are dropped). Returns ``(pairs (P, 2), targets (P,))``
    int32 NumPy.
    """
    pairs = all_pairs(n, max_distance)
    if isinstance(target, str) and target == "last":
        return pairs, np.full(len(pairs), n - 1, np.int32)
    if isinstance(target, str) and target == "pair_end":
        return pairs, pairs[:, 1].copy()
    if isinstance(target, int | np.integer) and not isinstance(target, bool):
        if not 0 <= target < n:
            raise ValueError(f"target must lie in [0, {n}) (the valid length), got {target}")
        pairs = pairs[pairs[:, 1] <= target]
        return pairs, np.full(len(pairs), target, np.int32)
    raise ValueError(f"target must be 'last', 'pair_end' or an int, got {target!r}")


def all_pairs_interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    *,
    max_distance: int | None = None,
    target: str | int = "last",
    length: int | None = None,
    **kwargs,
) -> tuple[np.ndarray, jax.Array]:
    """DI of all pairs ``x < y`` (within ``max_distance``) of one sentence.

    Args:
      tokens: ``(T,)`` ids; length: valid length (concrete int; default ``T``).
      max_distance: largest ``y - x``; default no limit.
      target: ``"last"`` (position ``length - 1``), ``"pair_end"`` (position ``y`` of
        each pair) or an int timestep (pairs with ``y > target`` are dropped).
      **kwargs: passed to :func:`interdependence` (``space``, ``layer``, ...).

    Returns:
      ``(pairs (P, 2) int32 NumPy, di (P,))``.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    n = int(tokens.shape[0] if length is None else length)
    pairs, tgt = pairs_and_targets(n, max_distance, target)
    di = interdependence(params, tokens, pairs, tgt, length=length, **kwargs)
    return pairs, di
