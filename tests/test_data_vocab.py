"""Tests for jaxdyn.data.vocab."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from jaxdyn.data.paths import CorpusError, CorpusNotFoundError
from jaxdyn.data.vocab import Vocab

TOY = [
    ["the", "cat", "sat"],
    ["the", "dog", "sat", "down"],
    ["a", "cat", "ran"],
    ["the", "end"],
]
# the=3, cat=2, sat=2, <eos>=4, a=1, dog=1, down=1, end=1, ran=1


def test_build_orders_by_count_then_alphabet():
    v = Vocab.build(TOY)
    assert v.itos == ("<eos>", "the", "cat", "sat", "a", "dog", "down", "end", "ran", "<unk>")
    assert v.counts == (4, 3, 2, 2, 1, 1, 1, 1, 1, 0)
    assert len(v) == 10
    assert v.eos_id == 0 and v.unk_id == 9
    assert sum(v.counts) == sum(len(s) + 1 for s in TOY)


def test_build_is_deterministic_under_sentence_order():
    shuffled = list(TOY)
    random.Random(0).shuffle(shuffled)
    assert Vocab.build(TOY) == Vocab.build(shuffled) == Vocab.build(iter(TOY))


def test_max_size_counts_specials_and_moves_counts_to_unk():
    v = Vocab.build(TOY, max_size=5)
    assert len(v) == 5
    # kept: the, cat, sat (+ eos, unk); dropped a, dog, down, end, ran -> unk count 5
    assert v.itos == ("<unk>", "<eos>", "the", "cat", "sat")
    assert v.counts == (5, 4, 3, 2, 2)
    assert v.index("dog") == v.unk_id
    assert sum(v.counts) == sum(len(s) + 1 for s in TOY)


def test_min_count():
    v = Vocab.build(TOY, min_count=2)
    assert set(v.itos) == {"the", "cat", "sat", "<eos>", "<unk>"}
    assert v.counts[v.unk_id] == 5
    with pytest.raises(ValueError, match="min_count"):
        Vocab.build(TOY, min_count=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build(TOY, max_size=1)


def test_unk_in_data_is_counted():
    v = Vocab.build([["<unk>", "x"], ["<unk>"]], max_size=2)
    assert v.itos == ("<unk>", "<eos>")
    assert v.counts == (3, 2)  # two <unk> in the data + dropped "x"


def test_custom_special_tokens():
    v = Vocab.build([["a"]], unk="UNK", eos="</s>")
    assert v.unk == "UNK" and v.eos == "</s>"
    assert v.itos[v.unk_id] == "UNK" and v.itos[v.eos_id] == "</s>"


def test_encode_decode_and_corpus_stream():
    v = Vocab.build(TOY)
    ids = v.encode(["the", "zebra", "cat"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [v.index("the"), v.unk_id, v.index("cat")]
    assert v.decode(ids) == ["the", "<unk>", "cat"]
    stream = v.encode_corpus(TOY)
    assert stream.dtype == np.int32 and stream.shape == (16,)
    expected = []
    for s in TOY:
        expected += [v.index(t) for t in s] + [v.eos_id]
    assert stream.tolist() == expected
    assert v.encode_corpus(TOY, add_eos=False).shape == (12,)
    assert v.encode([]).shape == (0,)
    assert v.frequency(np.array([[v.index("the"), v.eos_id]])).tolist() == [[3, 4]]
    with pytest.raises(ValueError, match="out of range"):
        v.decode([len(v)])
    with pytest.raises(ValueError, match="out of range"):
        v.frequency([-1])
    with pytest.raises(TypeError, match="integers"):
        v.decode(np.array([0.5]))
    with pytest.raises(TypeError, match="token sequences"):
        Vocab.build(["not a token list"])


def test_invalid_construction():
    with pytest.raises(ValueError, match="duplicate"):
        Vocab(itos=("a", "a", "<unk>", "<eos>"), counts=(1, 1, 0, 0))
    with pytest.raises(ValueError, match="unk token"):
        Vocab(itos=("a", "<eos>"), counts=(1, 1))
    with pytest.raises(ValueError, match="counts"):
        Vocab(itos=("<unk>", "<eos>"), counts=(1,))
    with pytest.raises(ValueError, match="non-negative"):
        Vocab(itos=("<unk>", "<eos>"), counts=(1, -1))
    with pytest.raises(ValueError, match="must differ"):
        Vocab(itos=("<unk>",), counts=(1,), unk="<unk>", eos="<unk>")


def test_dict_and_file_round_trip(tmp_path):
    v = Vocab.build([*TOY, ["ünïcode", "tab\tinside"]])
    d = v.to_dict()
    assert Vocab.from_dict(json.loads(json.dumps(d))) == v
    path = tmp_path / "vocab.json"
    v.save(path)
    w = Vocab.load(path)
    assert w == v and w.itos == v.itos and w.counts == v.counts
    assert "ünïcode" in w and "tab\tinside" in w
    assert w.index("the") == v.index("the") and w.unk_id == v.unk_id
    assert hash(w) == hash(v)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "Expecting property name"),
        ('{"format": "other", "version": 1}', "not a jaxdyn.vocab"),
        (
            '{"format": "jaxdyn.vocab", "version": 1, "unk": "<unk>", "eos": "<eos>",'
            ' "itos": ["<unk>", "<eos>"], "counts": [1, "x"]}',
            "counts",
        ),
        (
            '{"format": "jaxdyn.vocab", "version": 1, "unk": "<unk>", "eos": "<eos>",'
            ' "itos": ["<unk>"], "counts": [1]}',
            "eos token",
        ),
        ("[1, 2]", "mapping"),
    ],
)
def test_load_malformed_file_names_it(tmp_path, content, match):
    path = tmp_path / "bad_vocab.json"
    path.write_text(content)
    with pytest.raises(CorpusError, match=match) as e:
        Vocab.load(path)
    assert "bad_vocab.json" in str(e.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(CorpusNotFoundError, match=r"nothere\.json") as e:
        Vocab.load(tmp_path / "nothere.json")
    assert isinstance(e.value, FileNotFoundError)


def test_repr_is_short():
    v = Vocab.build([[f"w{i}" for i in range(1000)]])
    r = repr(v)
    assert r.startswith("Vocab(size=1002,") and len(r) < 200
