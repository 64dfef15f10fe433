"""Synthetic bracket-and-conduit language (the thesis's long-range rule data).

A uniform random token stream in which ``num_rules`` rules ``( c_1 ... c_L )``
are inserted at random, non-overlapping positions. The conduit ``c_1 ... c_L``
(``L = rule_length`` tokens *between* the brackets, as in the thesis generator's
``--rule_length`` help text) of each rule is drawn from a fixed bank of
``bank_size`` random conduits, assigned in turn so every bank conduit is used
``num_rules // bank_size`` or one more times. Each bank conduit also appears
``familiar_repeats`` extra times *outside* brackets ("familiar" conduits); with
``familiar_repeats = 0`` bank conduits never appear outside brackets.

Ids: ``0`` is ``"("``, ``1`` is ``")"``, ``2 .. vocab_size - 1`` are the random
words ``"w2" ... "w{V-1}"``; filler and conduit tokens are uniform over the
words. After placement, accidental occurrences of a bank conduit in the random
filler are removed by resampling one filler token of the window, so the
familiarity counts hold exactly (the thesis generator did not check this).

Evaluation sets (as the thesis's ``test``/``domain_test``): ``num_eval``
sequences of ``eval_length`` random words with one rule at a random offset:
``eval_familiar`` uses bank conduits (in turn), ``eval_fresh`` uses new random
conduits that are not in the bank. Both sets share the filler and bracket positions.

Differences from the thesis script (``synthetic_range_data.py``): token ids are
drawn from ``[2, V)`` (the script's ``randint(0, V)`` included ``V``); familiar
copies are exactly ``L`` tokens (the script's slice assignment shortened the
corpus by one token per copy); placement is uniform over non-overlapping
positions rather than on a grid of stride ``L``.

References:
  Saphra (2021), PhD thesis, Edinburgh, synthetic long-range rules experiment;
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP, Sec. 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN, CLOSE = 0, 1
_FIRST_WORD = 2
_MOD = (1 << 31) - 1


@dataclass(frozen=True)
class BracketConfig:
    """Parameters of :func:`generate_brackets`.

    Attributes:
      vocab_size: total number of ids, brackets included (``>= 4``).
      num_tokens: length of the training stream.
      rule_length: conduit length ``L`` (tokens between the brackets; a rule spans ``L + 2``).
      num_rules: bracketed rule instances in the stream.
      bank_size: number of distinct conduits.
      familiar_repeats: extra out-of-bracket occurrences of each bank conduit (0 = unfamiliar).
      num_eval: sequences per evaluation set.
      eval_length: length of each evaluation sequence (``>= L + 2``).
      seed: seed of the ``numpy.random.Generator``.
    """

    vocab_size: int = 1000
    num_tokens: int = 1_000_000
    rule_length: int = 10
    num_rules: int = 1000
    bank_size: int = 100
    familiar_repeats: int = 0
    num_eval: int = 1000
    eval_length: int = 35
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vocab_size < 4:
            raise ValueError(f"vocab_size must be >= 4, got {self.vocab_size}")
        if self.rule_length < 1 or self.bank_size < 1 or self.num_rules < 0:
            raise ValueError("rule_length and bank_size must be >= 1, num_rules >= 0")
        if self.familiar_repeats < 0 or self.num_eval < 0:
            raise ValueError("familiar_repeats and num_eval must be >= 0")
        used = self.num_rules * (self.rule_length + 2)
        used += self.bank_size * self.familiar_repeats * self.rule_length
        if used > self.num_tokens:
            raise ValueError(
                f"rules and familiar copies need {used} tokens > num_tokens={self.num_tokens}"
            )
        if self.eval_length < self.rule_length + 2:
            raise ValueError(f"eval_length must be >= rule_length + 2, got {self.eval_length}")
        if (self.vocab_size - _FIRST_WORD) ** self.rule_length < 2 * self.bank_size:
            raise ValueError("too few distinct conduits for this bank_size")


@dataclass(frozen=True)
class BracketData:
    """Output of :func:`generate_brackets` (all NumPy, int32/int64).

    Attributes:
      tokens: ``(num_tokens,)`` training stream.
      rule_starts: ``(num_rules,)`` positions of ``"("``, sorted.
      rule_conduits: ``(num_rules,)`` bank index of each rule's conduit.
      familiar_starts: ``(bank_size * familiar_repeats,)`` start positions of the
        out-of-bracket conduit copies, sorted.
      familiar_conduits: bank index of each copy.
      bank: ``(bank_size, rule_length)`` conduits.
      eval_familiar: ``(num_eval, eval_length)`` sequences with bank conduits.
      eval_fresh: ``(num_eval, eval_length)`` same filler, fresh random conduits.
      eval_open: ``(num_eval,)`` position of ``"("`` in each evaluation sequence
        (``")"`` is at ``eval_open + rule_length + 1``).
      eval_conduits: ``(num_eval,)`` bank index used by ``eval_familiar``.
      fresh_conduits: ``(num_eval, rule_length)`` conduits used by ``eval_fresh``.
      itos: word strings, ``itos[i]`` for id ``i``.
    """

    tokens: np.ndarray
    rule_starts: np.ndarray
    rule_conduits: np.ndarray
    familiar_starts: np.ndarray
    familiar_conduits: np.ndarray
    bank: np.ndarray
    eval_familiar: np.ndarray
    eval_fresh: np.ndarray
    eval_open: np.ndarray
    eval_conduits: np.ndarray
    fresh_conduits: np.ndarray
    itos: tuple[str, ...]


def bracket_itos(vocab_size: int) -> tuple[str, ...]:
    """Word strings of the bracket language: ``("(", ")", "w2", ..., "w{V-1}")``."""
    return ("(", ")", *(f"w{i}" for i in range(_FIRST_WORD, vocab_size)))


def as_vocab(data: BracketData):
    """A :class:`jaxdyn.data.vocab.Vocab` for the stream: generator ids unchanged,
    ``"<unk>"`` and ``"<eos>"`` appended (ids ``V`` and ``V + 1``, count 0)."""
    from jaxdyn.data.vocab import Vocab

    counts = np.bincount(data.tokens, minlength=len(data.itos))
    return Vocab(itos=(*data.itos, "<unk>", "<eos>"), counts=(*counts.tolist(), 0, 0))


def _words(rng, shape, vocab_size):
    return rng.integers(_FIRST_WORD, vocab_size, size=shape, dtype=np.int32)


def _window_hash(x: np.ndarray, width: int) -> np.ndarray:
    """Polynomial hash (base 1_000_003, mod 2^31 - 1) of each length-``width`` window;
    exact in int64 (values < 2^31, products < 2^51). Matches are verified exactly."""
    n = len(x) - width + 1
    acc = np.zeros(max(n, 0), dtype=np.int64)
    for k in range(width if n > 0 else 0):
        acc = (acc * 1_000_003 + x[k : k + n].astype(np.int64)) % _MOD
    return acc


def _bank_matches(tokens: np.ndarray, bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ``(start, bank index)`` where ``tokens[start:start+L] == bank[k]``."""
    width = bank.shape[1]
    wh = _window_hash(tokens, width)
    bh = np.concatenate([_window_hash(c, width) for c in bank]) if len(bank) else wh[:0]
    cand = np.nonzero(np.isin(wh, bh))[0]
    starts, idx = [], []
    windows = np.lib.stride_tricks.sliding_window_view(tokens, width)
    for s in cand:
        hit = np.nonzero((bank == windows[s]).all(axis=1))[0]
        for k in hit:
            starts.append(s)
            idx.append(k)
    return np.asarray(starts, np.int64), np.asarray(idx, np.int64)


def _place(rng, widths: np.ndarray, total: int) -> np.ndarray:
    """Uniformly random non-overlapping start positions for segments of ``widths``
    (in the given order) inside ``[0, total)`` (stars and bars)."""
    k = len(widths)
    free = total - int(widths.sum())
    slots = np.sort(rng.choice(free + k, size=k, replace=False))
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]) if k else np.zeros(0, np.int64)
    return (slots - np.arange(k) + offsets).astype(np.int64)


def generate_brackets(config: BracketConfig) -> BracketData:
    """Generate the bracket-and-conduit corpus and its evaluation sets.

    Args:
      config: :class:`BracketConfig`.

    Returns:
      :class:`BracketData`. Same config (seed included) gives identical arrays.

    References:
      Saphra (2021), PhD thesis, Edinburgh (synthetic rules with familiar conduits).
    """
    cfg, rng = config, np.random.default_rng(config.seed)
    L, V = cfg.rule_length, cfg.vocab_size
    bank = _words(rng, (cfg.bank_size, L), V)
    while len(np.unique(bank, axis=0)) < cfg.bank_size:  # distinct conduits
        bank = np.unique(bank, axis=0)
        bank = np.concatenate([bank, _words(rng, (cfg.bank_size - len(bank), L), V)])
    bank = bank[rng.permutation(cfg.bank_size)]

    n_fam = cfg.bank_size * cfg.familiar_repeats
    kinds = np.concatenate([np.zeros(cfg.num_rules, bool), np.ones(n_fam, bool)])
    conduit_of = np.concatenate(
        [
            np.arange(cfg.num_rules) % cfg.bank_size,
            np.repeat(np.arange(cfg.bank_size), cfg.familiar_repeats),
        ]
    )
    order = rng.permutation(len(kinds))
    kinds, conduit_of = kinds[order], conduit_of[order]
    widths = np.where(kinds, L, L + 2)
    starts = _place(rng, widths, cfg.num_tokens)

    tokens = _words(rng, cfg.num_tokens, V)
    filler = np.ones(cfg.num_tokens, bool)
    for s, fam, k in zip(starts, kinds, conduit_of):
        if fam:
            tokens[s : s + L] = bank[k]
            filler[s : s + L] = False
        else:
            tokens[s] = OPEN
            tokens[s + 1 : s + 1 + L] = bank[k]
            tokens[s + L + 1] = CLOSE
            filler[s : s + L + 2] = False
    designated = set((starts[kinds]).tolist()) | set((starts[~kinds] + 1).tolist())
    while True:  # remove accidental bank conduits made by the filler
        m_starts, _ = _bank_matches(tokens, bank)
        bad = [s for s in m_starts.tolist() if s not in designated]
        if not bad:
            break
        for s in bad:
            free = np.nonzero(filler[s : s + L])[0]
            if not len(free):
                raise RuntimeError("segments joined into a bank conduit; change the seed")
            pos = s + int(rng.choice(free))
            tokens[pos] = _words(rng, 1, V)[0]

    rule_sel = ~kinds
    r_order = np.argsort(starts[rule_sel])
    f_order = np.argsort(starts[kinds])

    n, S = cfg.num_eval, cfg.eval_length
    eval_fresh = _words(rng, (n, S), V)
    eval_open = rng.integers(0, S - L - 1, size=n)
    eval_conduits = (np.arange(n) % cfg.bank_size).astype(np.int64)
    fresh = _words(rng, (n, L), V)
    while True:  # fresh conduits must not be bank conduits
        in_bank = (fresh[:, None, :] == bank[None]).all(-1).any(-1)
        if not in_bank.any():
            break
        fresh[in_bank] = _words(rng, (int(in_bank.sum()), L), V)
    rows = np.arange(n)[:, None]
    cols = eval_open[:, None] + 1 + np.arange(L)[None]
    eval_fresh[rows[:, 0], eval_open] = OPEN
    eval_fresh[rows[:, 0], eval_open + L + 1] = CLOSE
    eval_familiar = eval_fresh.copy()
    eval_fresh[rows, cols] = fresh
    eval_familiar[rows, cols] = bank[eval_conduits]

    return BracketData(
        tokens=tokens,
        rule_starts=starts[rule_sel][r_order],
        rule_conduits=conduit_of[rule_sel][r_order].astype(np.int64),
        familiar_starts=starts[kinds][f_order],
        familiar_conduits=conduit_of[kinds][f_order].astype(np.int64),
        bank=bank,
        eval_familiar=eval_familiar,
        eval_fresh=eval_fresh,
        eval_open=eval_open.astype(np.int64),
        eval_conduits=eval_conduits,
        fresh_conduits=fresh,
        itos=bracket_itos(V),
    )


def conduit_occurrences(tokens: np.ndarray, bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every occurrence of a bank conduit in ``tokens``.

    Args:
      tokens: ``(N,)`` int stream; bank: ``(K, L)`` conduits.

    Returns:
      ``(starts, bank_index)``, each ``(M,)`` int64, sorted by start.
    """
    s, k = _bank_matches(np.asarray(tokens), np.asarray(bank))
    o = np.lexsort((k, s))
    return s[o], k[o]
