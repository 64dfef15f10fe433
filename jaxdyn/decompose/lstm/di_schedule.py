"""Host-side schedule of the packed DI computation (:mod:`jaxdyn.decompose.lstm.di_packed`).

Works on concrete NumPy arrays (pairs, targets, lengths), before the compiled
kernel runs. A pair is two parts ``A``, ``B``, each a contiguous inclusive range
of positions ``[lo, hi]`` (a single word is ``[x, x]``; ``[-1, -1]`` is empty).
The three position sets read per pair are ``A``, ``B`` and ``A | B``; each set is
stored normalised as at most two disjoint, non-adjacent ranges
``(lo1, hi1, lo2, hi2)`` (``lo2 = hi2 = -1`` when one range suffices), so equal
sets are computed once. Two phases:

1. the parts (and the unions that cannot be forked, see below), each run from
   its first position ``lo1`` to the last target that reads it;
2. **forked unions**: let ``F`` be the part that starts first (the longer one on
   a tie). ``A | B`` equals ``F`` at every step before the first step ``k`` where
   their relevant inputs or bias products differ (``k`` = the first position of
   ``A | B`` not in ``F``; one earlier under ``span_bias="exclusive_last"`` when
   that position follows ``F`` directly, as the bias product at ``F``'s last
   position then becomes relevant). So the union starts at ``k`` from ``F``'s full
   carry (all layers' ``beta_h``, ``beta_c``) after step ``k - 1``; reads before
   ``k`` read ``F``. Not forkable when ``k`` is ``F``'s first position (e.g.
   ``exclusive_last`` with ``F`` one word long and adjacent to the other part):
   the union then runs in phase 1. A union equal to ``F`` is ``F``.

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
    sets: np.ndarray  # (n, 4) normalised position sets (lo1, hi1, lo2, hi2)
    start: np.ndarray
    n: np.ndarray
    init: np.ndarray  # initial-state row, -1 = zeros


def _member(sets, p):
    """Whether positions ``p`` lie in the normalised sets ``sets`` (same leading shape)."""
    return ((sets[..., 0] <= p) & (p <= sets[..., 1])) | ((sets[..., 2] <= p) & (p <= sets[..., 3]))


def _phase(sp: _Spans, lengths, t_len, span_bias, chunk):
    """Pack ``sp`` into a :class:`Phase`; returns it and ``row(span, step)``."""
    steps = min(t_len, bucket(-(-int(sp.n.max(initial=1)) // 8) * 8))
    lane, offset, lanes = _pack(sp.n, steps)
    width = bucket(lanes, 32) if chunk is None else chunk
    n_chunks = 1 if chunk is None else max(1, -(-lanes // chunk))
    sid = np.repeat(np.arange(len(sp.n)), sp.n)  # one entry per (span, step)
    k = np.arange(len(sid)) - np.repeat(np.cumsum(sp.n) - sp.n, sp.n)
    p, sets = sp.start[sid] + k, sp.sets[sid]
    in_span = _member(sets, p)
    bias = in_span
    if span_bias == "exclusive_last":
        bias = in_span & _member(sets, p + 1) & (p + 1 < lengths[sp.sent[sid]])
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


def as_spans(pairs) -> np.ndarray:
    """Positions ``(..., 2)`` (``-1`` = empty) as spans ``(..., 2, 2)`` ``[[x, x], [y, y]]``."""
    pairs = np.asarray(pairs)
    return np.repeat(pairs[..., None], 2, axis=-1)


def normalise(spans, t_len: int, span_bias: str):
    """Normalised sets of the parts and unions of spans ``(N, 2, 2)`` (host side).

    Returns:
      ``(sets (N, 3, 4), first (N, 4), fork (N,))``: the sets ``A``, ``B``,
      ``A | B`` as ``(lo1, hi1, lo2, hi2)`` (empty: ``(T, T, -1, -1)``, never live);
      the part ``F`` that starts first; the union's fork step ``k`` (``-1``: not
      forkable or equal to ``F``).
    """
    sp = np.asarray(spans, np.int64)
    lo, hi = sp[..., 0], sp[..., 1]  # (N, 2)
    empty = lo < 0
    none = np.full(lo.shape[:1], -1, np.int64)

    def one(k):
        out = np.stack([lo[:, k], hi[:, k], none, none], 1)
        out[empty[:, k]] = (t_len, t_len, -1, -1)
        return out

    a, b = one(0), one(1)
    a_first = ~empty[:, 0] & (
        empty[:, 1] | (lo[:, 0] < lo[:, 1]) | ((lo[:, 0] == lo[:, 1]) & (hi[:, 0] >= hi[:, 1]))
    )
    f, s = np.where(a_first[:, None], a, b), np.where(a_first[:, None], b, a)
    grows = (s[:, 0] < t_len) & (s[:, 1] > f[:, 1])  # the other part reaches past F
    m = np.maximum(s[:, 0], f[:, 1] + 1)  # first position of A | B not in F
    touch = m == f[:, 1] + 1
    union = f.copy()
    union[grows & touch, 1] = s[grows & touch, 1]
    gap = grows & ~touch
    union[gap, 2], union[gap, 3] = m[gap], s[gap, 1]
    fork = m - (touch & (span_bias == "exclusive_last"))
    fork = np.where(grows & (fork > f[:, 0]), fork, -1)
    return np.stack([a, b, union], 1), f, fork


def _unique_rows(rows):
    uniq, inv = np.unique(rows, axis=0, return_inverse=True)
    return uniq, inv.reshape(-1)


def schedule(pairs, target, lengths, t_len: int, span_bias: str, chunk=None) -> Schedule:
    """Distinct position sets of all pairs in two packed phases (host side, concrete inputs).

    Args:
      pairs: ``(B, P, 2)`` positions (``-1`` = empty) or ``(B, P, 2, 2)`` inclusive
        spans ``[[a_lo, a_hi], [b_lo, b_hi]]`` (``[-1, -1]`` = empty);
      target: ``(B, P)`` read steps; lengths: ``(B,)`` valid lengths; t_len: padded
        length ``T``; span_bias: ``"inclusive"`` or ``"exclusive_last"``; chunk: lanes
        per chunk.

    Returns:
      :class:`Schedule` for ``N = B P`` pairs. ``init = -1`` means the zero state;
      phase 2's ``init`` rows index phase 1's flattened output.

    References:
      Murdoch et al. (2018), Eqs. 8-19.
    """
    pairs, lengths = np.asarray(pairs, np.int64), np.asarray(lengths, np.int64)
    spans = as_spans(pairs) if pairs.ndim == 3 else pairs
    n_b, n_p = spans.shape[:2]
    sets, first_part, fork = normalise(spans.reshape(-1, 2, 2), t_len, span_bias)
    tgt = np.repeat(np.asarray(target, np.int64).reshape(-1, 1), 3, 1)
    sent = np.repeat(np.repeat(np.arange(n_b, dtype=np.int64), n_p)[:, None], 3, 1)
    live = sets[..., 0] <= tgt  # beta at the target is 0 unless the set starts by then
    fk = np.stack([np.full_like(fork, -1), np.full_like(fork, -1), fork], 1)
    early = (fk >= 0) & (tgt < fk)  # before the fork step the union is F
    sets[early] = np.broadcast_to(first_part[:, None], sets.shape)[early]
    forked = live & (fk >= 0) & ~early
    first = live & ~forked

    def spans_of(rows, start_col, t):
        uniq, inv = _unique_rows(rows)
        start = uniq[:, start_col]
        n = np.zeros(len(uniq), np.int64)
        np.maximum.at(n, inv, t - start[inv])
        return uniq, _Spans(uniq[:, 0], uniq[:, 1:5], start, n + 1, np.full(len(uniq), -1)), inv

    key1, sp1, inv1 = spans_of(
        np.concatenate([sent[first][:, None], sets[first]], 1), 1, tgt[first]
    )
    # phase 2: rows (sentence, set, fork step, F's set); a union starts at its fork step
    f_rows = np.broadcast_to(first_part[:, None], sets.shape)[forked]
    rows2 = np.concatenate([sent[forked][:, None], sets[forked], fk[forked][:, None], f_rows], 1)
    key2, sp2, inv2 = spans_of(rows2, 5, tgt[forked])
    phase1, row1, n1 = _phase(sp1, lengths, t_len, span_bias, chunk)
    # ... from F's state after step fork - 1 (F, a part of the same pair, is in phase 1)
    f_key = np.concatenate([key2[:, :1], key2[:, 6:10]], 1)
    both, binv = _unique_rows(np.concatenate([key1, f_key]))
    idx = np.full(len(both), -1, np.int64)
    idx[binv[: len(key1)]] = np.arange(len(key1))
    single = idx[binv[len(key1) :]]
    if np.any(single < 0):
        raise AssertionError("di_schedule: a forked union's first part is not scheduled")
    sp2 = sp2._replace(init=row1(single, sp2.start - 1 - sp1.start[single]))
    phase2, row2, n2 = _phase(sp2, lengths, t_len, span_bias, chunk)

    read = np.full(sets.shape[:2], n1 + n2, np.int64)
    read[first] = row1(inv1, tgt[first] - sp1.start[inv1])
    read[forked] = n1 + row2(inv2, tgt[forked] - sp2.start[inv2])
    return Schedule(phase1, phase2, read.astype(np.int32))
