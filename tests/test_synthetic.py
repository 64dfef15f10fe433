"""Tests of jaxdyn.data.synthetic (bracket-and-conduit generator)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxdyn.data.synthetic import (
    CLOSE,
    OPEN,
    BracketConfig,
    as_vocab,
    bracket_itos,
    conduit_occurrences,
    generate_brackets,
)

CFG = BracketConfig(
    vocab_size=12, num_tokens=20_000, rule_length=3, num_rules=200, bank_size=10,
    familiar_repeats=4, num_eval=50, eval_length=12, seed=7,
)  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return generate_brackets(CFG)


def test_rule_count_and_shape(data):
    L = CFG.rule_length
    assert data.tokens.shape == (CFG.num_tokens,) and data.tokens.dtype == np.int32
    assert np.sum(data.tokens == OPEN) == CFG.num_rules
    assert np.sum(data.tokens == CLOSE) == CFG.num_rules
    assert len(data.rule_starts) == CFG.num_rules
    assert np.all(data.tokens[data.rule_starts] == OPEN)
    assert np.all(data.tokens[data.rule_starts + L + 1] == CLOSE)
    inner = data.tokens[data.rule_starts[:, None] + 1 + np.arange(L)]
    np.testing.assert_array_equal(inner, data.bank[data.rule_conduits])
    # conduits used in turn: each bank conduit num_rules / bank_size times
    assert np.all(
        np.bincount(data.rule_conduits, minlength=CFG.bank_size) == CFG.num_rules // CFG.bank_size
    )
    words = np.delete(data.tokens, np.concatenate([data.rule_starts, data.rule_starts + L + 1]))
    assert words.min() >= 2 and words.max() < CFG.vocab_size


def test_familiar_conduits_appear_exactly_repeats_times_outside(data):
    starts, idx = conduit_occurrences(data.tokens, data.bank)
    inside = np.isin(starts, data.rule_starts + 1)
    assert inside.sum() == CFG.num_rules
    outside = np.bincount(idx[~inside], minlength=CFG.bank_size)
    assert np.all(outside == CFG.familiar_repeats)
    np.testing.assert_array_equal(np.sort(starts[~inside]), data.familiar_starts)


def test_unfamiliar_conduits_never_outside():
    d = generate_brackets(BracketConfig(**{**CFG.__dict__, "familiar_repeats": 0}))
    starts, _ = conduit_occurrences(d.tokens, d.bank)
    assert set(starts.tolist()) == set((d.rule_starts + 1).tolist())
    assert len(d.familiar_starts) == 0


def test_eval_sets(data):
    n, S, L = CFG.num_eval, CFG.eval_length, CFG.rule_length
    for ev in (data.eval_familiar, data.eval_fresh):
        assert ev.shape == (n, S)
        assert np.all(ev[np.arange(n), data.eval_open] == OPEN)
        assert np.all(ev[np.arange(n), data.eval_open + L + 1] == CLOSE)
        assert np.all((ev == OPEN).sum(1) == 1) and np.all((ev == CLOSE).sum(1) == 1)
    cols = data.eval_open[:, None] + 1 + np.arange(L)
    rows = np.arange(n)[:, None]
    np.testing.assert_array_equal(data.eval_familiar[rows, cols], data.bank[data.eval_conduits])
    fresh = data.eval_fresh[rows, cols]
    np.testing.assert_array_equal(fresh, data.fresh_conduits)
    assert not (fresh[:, None] == data.bank[None]).all(-1).any()
    outside = np.ones((n, S), bool)
    outside[rows, cols] = False
    np.testing.assert_array_equal(data.eval_familiar[outside], data.eval_fresh[outside])


def test_seeded_reproducible(data):
    again = generate_brackets(CFG)
    np.testing.assert_array_equal(again.tokens, data.tokens)
    np.testing.assert_array_equal(again.eval_fresh, data.eval_fresh)
    other = generate_brackets(BracketConfig(**{**CFG.__dict__, "seed": 8}))
    assert not np.array_equal(other.tokens, data.tokens)


def test_vocab(data):
    assert bracket_itos(5) == ("(", ")", "w2", "w3", "w4")
    assert data.itos == bracket_itos(CFG.vocab_size)
    v = as_vocab(data)
    assert v.itos[: CFG.vocab_size] == data.itos and v.itos[-2:] == ("<unk>", "<eos>")
    assert v.counts[OPEN] == CFG.num_rules and sum(v.counts) == CFG.num_tokens


def test_default_config_statistics():
    d = generate_brackets(BracketConfig(familiar_repeats=2, seed=1))
    assert d.tokens.shape == (1_000_000,) and d.bank.shape == (100, 10)
    assert np.sum(d.tokens == OPEN) == 1000 and len(d.familiar_starts) == 200
    starts, _ = conduit_occurrences(d.tokens, d.bank)
    assert len(starts) == 1200


def test_bad_config():
    with pytest.raises(ValueError, match="num_tokens"):
        BracketConfig(num_tokens=100, num_rules=50)
    with pytest.raises(ValueError, match="vocab_size"):
        BracketConfig(vocab_size=3)
    with pytest.raises(ValueError, match="eval_length"):
        BracketConfig(eval_length=5)
