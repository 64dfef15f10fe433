"""Host-side schedule of the packed DI computation (:mod:`jaxdyn.decompose.lstm.di_packed`).

Works on concrete NumPy arrays (pairs, targets, lengths), before the compiled
kernel runs. Spans are ``(sentence, lo, hi)`` position sets ``{lo, hi}``
(``lo == hi`` for a single word). Two phases:

1. single words (and the pair spans that cannot be forked, see below), each run
   from its word ``lo`` to the last target that reads it;
2. **forked pair spans**: ``beta_{x,y}`` equals ``beta_{lo}`` at every step
   before ``hi`` (same relevant inputs and bias products), so a pair span starts
   at ``hi`` from the single word ``lo``'s full carry (all layers' ``beta_h``,
   ``beta_c``) after step ``hi - 1``. Reads of a pair span before ``hi`` read the
   single word. Not forkable: ``span_bias="exclusive_last"`` with ``hi = lo + 1``
   (the bias product at ``lo`` is relevant for the pair, not for ``{lo}``).

Each phase packs its spans back to back into lanes of ``R`` steps (best fit,
longest first); step arrays are ``(C, R, W)``: ``C`` chunks of ``W`` lanes.

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (the CD recursion is 0 before a span
  and depends on the span only through the positions reached so far).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Phase(NamedTuple):
    """Step arrays ``(C, R, W)`` of one phase.

    Attributes:
      pos: flat forward-pass row ``sentence * T + position`` read at each step.
      rel: the position is in the span (relevant word input at layer 0).
      bias: the bias product is relevant (span-bias convention applied).
      reset: a span's first step or an idle step: the carry is set to row ``init``
        of the phase's initial-state table (its last row is zeros).
      init: that row.
    """

    pos: np.ndarray
    rel: np.ndarray
    bias: np.ndarray
    reset: np.ndarray
    init: np.ndarray


class Schedule(NamedTuple):
    """Two phases and ``read`` ``(N, 3)``: rows of the flattened outputs of phase 1,
    then phase 2, then one zero row, holding ``beta_x``, ``beta_y``, ``beta_{x,y}``."""

    single: Phase
    forked: Phase
    read: np.ndarray


def bucket(n: int, minimum: int = 8) -> int:
    """Smallest size ``>= n`` of the form ``m 2^k`` with ``8 <= m < 16`` (or ``minimum``)."""
    if n <= minimum:
        return minimum
    step = 1 << max(0, n.bit_length() - 4)
    return -(-n // step) * step


def _pack(n: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Best-fit decreasing packing of lengths ``n`` (each ``<= cap``) into lanes of ``cap``.

    Returns:
      ``(lane, offset, lanes)``: each item's lane and first step, and the lane count.
    """
    lane = np.zeros(len(n), np.int64)
    offset = np.zeros(len(n), np.int64)
    by_room: list[list[int]] = [[] for _ in range(cap + 1)]  # open lanes by room left
    fill: list[int] = []
    for i in np.argsort(-n, kind="stable").tolist():
        need = int(n[i])
        room = next((r for r in range(need, cap) if by_room[r]), -1)
        if room < 0:
            ln = len(fill)
            fill.append(0)
        else:
            ln = by_room[room].pop()
        lane[i], offset[i] = ln, fill[ln]
        fill[ln] += need
        if fill[ln] < cap:
            by_room[cap - fill[ln]].append(ln)
    return lane, offset, len(fill)


class _Spans(NamedTuple):
    sent: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    start: np.ndarray
    n: np.ndarray
    init: np.ndarray  # initial-state row, -1 = zeros


def _phase(sp: _Spans, lengths, t_len, span_bias, chunk):
    """Pack ``sp`` into a :class:`Phase`; returns it and ``row(span, step)``."""
    steps = min(t_len, bucket(-(-int(sp.n.max(initial=1)) // 8) * 8))
    lane, offset, lanes = _pack(sp.n, steps)
    width = bucket(lanes, 32) if chunk is None else chunk
    n_chunks = 1 if chunk is None else max(1, -(-lanes // chunk))
    sid = np.repeat(np.arange(len(sp.n)), sp.n)  # one entry per (span, step)
    k = np.arange(len(sid)) - np.repeat(np.cumsum(sp.n) - sp.n, sp.n)
    p, lo, hi = sp.start[sid] + k, sp.lo[sid], sp.hi[sid]
    in_span = (p == lo) | (p == hi)
    bias = in_span
    if span_bias == "exclusive_last":
        bias = in_span & ((p + 1 == lo) | (p + 1 == hi)) & (p + 1 < lengths[sp.sent[sid]])
    at = lane[sid] * steps + offset[sid] + k

    def grid(vals, idle):
        out = np.full(n_chunks * width * steps, idle, np.asarray(vals).dtype)
        out[at] = vals
        return out.reshape(n_chunks, width, steps).transpose(0, 2, 1)

    first = k == 0
    init = np.where(first, sp.init[sid], -1)
    phase = Phase(
        grid((sp.sent[sid] * t_len + p).astype(np.int32), 0),
        grid(in_span, False),
        grid(bias, False),
        grid(first, True),
        grid(init.astype(np.int32), -1),
    )

    def row(span, step):  # flat output row: chunk, step, lane in chunk
        ln = lane[span]
        return ((ln // width) * steps + offset[span] + step) * width + ln % width

    return phase, row, n_chunks * steps * width


def schedule(pairs, target, lengths, t_len: int, span_bias: str, chunk=None) -> Schedule:
    """Distinct spans of all pairs in two packed phases (host side, concrete inputs).

    Args:
      pairs: ``(B, P, 2)`` positions (``-1`` = empty); target: ``(B, P)`` read steps;
      lengths: ``(B,)`` valid lengths; t_len: padded length ``T``;
      span_bias: ``"inclusive"`` or ``"exclusive_last"``; chunk: lanes per chunk.

    Returns:
      :class:`Schedule` for ``N = B P`` pairs. ``init = -1`` means the zero state;
      phase 2's ``init`` rows index phase 1's flattened output.

    References:
      Murdoch et al. (2018), Eqs. 8-19.
    """
    pairs, lengths = np.asarray(pairs), np.asarray(lengths, np.int64)
    n_b, n_p = pairs.shape[:2]
    x = pairs[..., 0].reshape(-1).astype(np.int64)
    y = pairs[..., 1].reshape(-1).astype(np.int64)
    tgt = np.repeat(np.asarray(target, np.int64).reshape(-1, 1), 3, 1)
    sent = np.repeat(np.repeat(np.arange(n_b, dtype=np.int64), n_p)[:, None], 3, 1)
    xs, ys = np.where(x >= 0, x, t_len), np.where(y >= 0, y, t_len)
    lo = np.stack([xs, ys, np.minimum(xs, ys)], 1)  # uses: {x}, {y}, {x, y}
    hi = np.stack([xs, ys, np.maximum(x, y)], 1)
    live = lo <= tgt  # beta at the target is 0 unless the span starts by then
    pair = lo < hi
    forkable = pair & ~((span_bias == "exclusive_last") & (hi == lo + 1))
    hi = np.where(forkable & (tgt < hi), lo, hi)  # before hi: the single word's beta
    forked = live & forkable & (tgt >= hi) & (lo < hi)
    first = live & ~forked

    def spans(mask, start_of):
        key = (sent[mask] * t_len + lo[mask]) * t_len + hi[mask]
        uniq, inv = np.unique(key, return_inverse=True)
        s_sent, s_lo, s_hi = uniq // (t_len * t_len), (uniq // t_len) % t_len, uniq % t_len
        start = s_lo if start_of == "lo" else s_hi
        n = np.zeros(len(uniq), np.int64)
        np.maximum.at(n, inv, tgt[mask] - start[inv])
        return _Spans(s_sent, s_lo, s_hi, start, n + 1, np.full(len(uniq), -1)), inv

    sp1, inv1 = spans(first, "lo")
    sp2, inv2 = spans(forked, "hi")
    phase1, row1, n1 = _phase(sp1, lengths, t_len, span_bias, chunk)
    # phase 2 starts from the single word lo's state after step hi - 1
    key1 = (sp1.sent * t_len + sp1.lo) * t_len + sp1.hi
    single = np.searchsorted(key1, (sp2.sent * t_len + sp2.lo) * t_len + sp2.lo)
    sp2 = sp2._replace(init=row1(single, sp2.hi - 1 - sp2.lo))
    phase2, row2, n2 = _phase(sp2, lengths, t_len, span_bias, chunk)

    read = np.full(lo.shape, n1 + n2, np.int64)
    read[first] = row1(inv1, tgt[first] - sp1.start[inv1])
    read[forked] = n1 + row2(inv2, tgt[forked] - sp2.start[inv2])
    return Schedule(phase1, phase2, read.astype(np.int32))
