"""Decompositional interdependence (DI) of position or span pairs from CD-T.

``DI(A, B) = ||beta_{A|B} - beta_A - beta_B|| / ||beta_{A|B}||`` at a target position
(:func:`jaxdyn.analysis.interactions.di_ratio`), with the same arguments and results as
the LSTM's :func:`jaxdyn.decompose.lstm.interdependence` (``pairs`` ``(P, 2)``
positions or ``(P, 2, 2)`` inclusive spans, ``-1`` / ``[-1, -1]`` the empty set,
``space`` ``"hidden"``/``"logits"``/both, ``parts=True`` for :class:`DIParts`).
``beta`` is CD-T's relevant part (:mod:`jaxdyn.decompose.transformer.rules`, same
rule options as :func:`jaxdyn.decompose.transformer.contextual_decomposition`).

* **Spaces**: ``"hidden"`` is the residual stream after block ``layer`` (default the
  top block, the final LayerNorm's input); ``"logits"`` the logits' relevant part
  (the final LayerNorm and decoder rules applied to the top stream). With separate
  biases the decoder bias is not part of beta, and without ``parts`` the logit-space
  ratio is taken through the decoder matrix without forming the logits
  (:func:`jaxdyn.analysis.interactions.di_ratio_linear`). ``output`` (``parts``) is
  the forward pass at the target (the stream, or the logits with the bias).
* **Beta-only propagation**: every rule reads the irrelevant part only through
  ``beta + gamma + iota`` (the forward value, shared by all sets of a sentence) and the
  bias term ``iota`` (independent of the set; one stream per sentence), so each set
  propagates ``beta`` alone with ``gamma + iota = total - beta``. Tests check it
  against the full decomposition.
* **Sets**: position pairs use one set per position (shared by every pair), one empty
  set and one union per pair; span pairs three sets per pair. All sets run over all
  ``T`` positions with fixed shapes (``schedule="dense"``, the only schedule here:
  jit/vmap-able in every argument); ``mask_chunk`` sets at a time bound memory.
* **Guard**: ``beta_{A|B} = 0`` gives ``DI = 0`` (empty parts, parts after the target,
  padding), never NaN.
* **Context**: a model with learned positions reads at most ``C`` positions; inputs
  padded beyond ``C`` whose valid lengths fit (values on the host) are cut to ``C``
  (the cut positions are padding, which no earlier position reads).

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Eq. 1; Hsu et al. (2025), ICLR, Sec. 3 (CD-T); Murdoch et al. (2018), Eqs. 10-12.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.decompose.lstm._checks import (
    as_int,
    check_batch_shapes,
    check_pairs,
    host_value,
    one_sentence,
)
from jaxdyn.decompose.lstm.interdependence import SPACES, DIParts, pairs_and_targets
from jaxdyn.decompose.transformer import rules as R
from jaxdyn.decompose.transformer._checks import check_params, check_tokens, context_of
from jaxdyn.decompose.transformer.di_kernel import di_batch_jit
from jaxdyn.models.transformer import block_names

SCHEDULES = ("dense",)


# ----------------------------------------------------------------------------- public API


def _resolve(params, space, layer, mask_chunk, schedule):
    if mask_chunk is not None and (not isinstance(mask_chunk, int | np.integer) or mask_chunk < 1):
        raise ValueError(f"mask_chunk must be a positive int or None, got {mask_chunk!r}")
    if schedule not in SCHEDULES:
        raise ValueError(
            f"schedule must be one of {SCHEDULES} for a Transformer (every set runs over "
            f"all positions; the LSTM's packed schedule has no analogue), got {schedule!r}"
        )
    spaces = (space,) if isinstance(space, str) else tuple(space)
    if not spaces or any(s not in SPACES for s in spaces) or len(set(spaces)) < len(spaces):
        raise ValueError(f"space must be one of {SPACES} or a tuple of them, got {space!r}")
    n_layers = len(block_names(params))
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must lie in [-{n_layers}, {n_layers}), got {layer}")
    return spaces, layer % n_layers


def _fit_context(params, tokens, lengths):
    """Cut padding beyond a learned-position context when the valid lengths fit."""
    c = context_of(params)
    if c is None or tokens.shape[1] <= c:
        return tokens
    ln = None if lengths is None else host_value(lengths)
    if ln is None or np.max(ln, initial=0) > c:
        longest = tokens.shape[1] if ln is None else int(np.max(ln))
        raise ValueError(
            f"sequences of {longest} positions exceed the model's context of {c} learned "
            "positions (train with a longer data.bptt, or analyse shorter sentences)"
        )
    return tokens[:, :c]


def interdependence_batch(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: jax.Array,
    *,
    heads: int,
    lengths: jax.Array | None = None,
    space: str | tuple[str, ...] = "hidden",
    layer: int = -1,
    logit_ids: jax.Array | None = None,
    bias: str = "separate",
    activation: str = "shapley",
    positions: str = "bias",
    mask_chunk: int | None = None,
    schedule: str = "dense",
    parts: bool = False,
):
    """DI for ``B`` padded sentences with ``P`` position or span pairs each, in one call.

    Args:
      params: Transformer LM/tagger ``params`` (layout of :mod:`jaxdyn.models.transformer`).
      tokens: ``(B, T)`` int ids; lengths: ``(B,)`` valid lengths (default ``T``).
      pairs: ``(B, P, 2)`` positions (``-1`` = empty; pad with ``(-1, -1)``, DI 0) or
        ``(B, P, 2, 2)`` inclusive spans ``[[a_lo, a_hi], [b_lo, b_hi]]`` (``[-1, -1]`` empty).
      target: ``(B, P)`` or ``(B,)`` positions at which beta is read.
      heads: the model's attention heads (``model.heads``).
      space: ``"hidden"`` (residual stream after block ``layer``), ``"logits"``, or a
        tuple of both (one computation, a dict of results).
      layer: block for hidden space (negative counts from the top).
      logit_ids: optional ``(K,)`` decoder rows for logit space.
      bias, activation, positions: CD-T rules (:mod:`jaxdyn.decompose.transformer.rules`).
      mask_chunk: sets per chunk (bounds memory); default all at once.
      schedule: ``"dense"`` (the only one; accepted for the LSTM's signature).
      parts: return :class:`DIParts` (DI, the parts and the forward output at the targets).

    Returns:
      ``(B, P)`` DI values, or :class:`DIParts` with leading axes ``(B, P)``; for a tuple
      ``space``, a dict keyed by space.

    Raises:
      ValueError: bad shapes, positions, spans, targets, token ids, lengths, options, or
        sentences longer than a learned-position context.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Hsu et al. (2025), ICLR, Sec. 3.
    """
    tokens, pairs, target = as_int(tokens), as_int(pairs), as_int(target)
    check_batch_shapes(tokens, pairs)
    rules = R.check_rules(bias, activation, positions)
    check_params(params, heads)
    spaces, layer = _resolve(params, space, layer, mask_chunk, schedule)
    xp = np if isinstance(target, np.ndarray) else jnp
    target = xp.broadcast_to(target[:, None] if target.ndim == 1 else target, pairs.shape[:2])
    b, t = tokens.shape
    check_pairs(pairs, target, t, lengths, spans=pairs.ndim == 4)
    tokens = _fit_context(params, tokens, lengths)
    check_tokens(params, tokens, lengths, logit_ids)
    lengths = np.full((b,), t, np.int32) if lengths is None else as_int(lengths)
    out = di_batch_jit(
        params, tokens, pairs, target, lengths,
        None if logit_ids is None else jnp.asarray(logit_ids),
        heads=int(heads), rules=rules, spaces=spaces, layer=layer, spans=pairs.ndim == 4,
        chunk=mask_chunk, parts=parts,
    )  # fmt: skip
    res = {s: DIParts(*v) if parts else v[0] for s, v in out.items()}
    return res[space] if isinstance(space, str) else res


def interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: int | jax.Array,
    *,
    heads: int,
    length: int | jax.Array | None = None,
    **kwargs,
):
    """DI of ``P`` position or span pairs of one sentence (:func:`interdependence_batch`).

    Args:
      tokens: ``(T,)`` ids; pairs: ``(P, 2)`` positions or ``(P, 2, 2)`` spans;
      target: int or ``(P,)``; heads: the model's heads; length: valid length;
      **kwargs: ``space``, ``layer``, ``logit_ids``, rules, ``mask_chunk``,
        ``schedule``, ``parts`` as in :func:`interdependence_batch`.

    Returns:
      ``(P,)`` DI values (or :class:`DIParts`, or a dict by space).

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Hsu et al. (2025), ICLR, Sec. 3.
    """
    tokens, pairs, target, lengths = one_sentence(tokens, pairs, target, length)
    out = interdependence_batch(
        params, tokens, pairs, target, heads=heads, lengths=lengths, **kwargs
    )
    return jax.tree_util.tree_map(lambda v: v[0], out)


def all_pairs_interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    *,
    heads: int,
    max_distance: int | None = None,
    target: str | int = "last",
    length: int | None = None,
    **kwargs,
) -> tuple[np.ndarray, jax.Array]:
    """DI of all pairs ``x < y`` (within ``max_distance``) of one sentence.

    Args:
      target: ``"last"`` (position ``length - 1``), ``"pair_end"`` (each pair's ``y``) or
        an int position (pairs with ``y > target`` are dropped); other arguments as in
        :func:`interdependence`.

    Returns:
      ``(pairs (P, 2) int32 NumPy, di (P,))``.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    n = int(tokens.shape[0] if length is None else length)
    pairs, tgt = pairs_and_targets(n, max_distance, target)
    di = interdependence(params, tokens, pairs, tgt, heads=heads, length=length, **kwargs)
    return pairs, di
