"""Tests for jaxdyn.data.batching against PyTorch's word_language_model batching."""

from __future__ import annotations

import numpy as np
import pytest

from jaxdyn.data.batching import (
    batchify,
    encode_tagged,
    iter_lm_chunks,
    iter_tag_chunks,
    lm_chunk,
    num_chunks,
    tag_chunk,
)
from jaxdyn.data.conllu import read_conllu
from jaxdyn.data.corpora import TaggedCorpus
from jaxdyn.data.vocab import Vocab


# Straight NumPy transcription of pytorch/examples word_language_model/main.py
# (time-major, as there): batchify -> (nbatch, bsz); get_batch -> (T, B), flat target.
def _pt_batchify(data: np.ndarray, bsz: int) -> np.ndarray:
    nbatch = data.shape[0] // bsz
    data = data[: nbatch * bsz]
    return data.reshape(bsz, -1).T  # .view(bsz, -1).t()


def _pt_get_batch(source: np.ndarray, i: int, bptt: int):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i : i + seq_len]
    target = source[i + 1 : i + 1 + seq_len].reshape(-1)
    return data, target


CASES = [(100, 4, 7), (97, 3, 5), (64, 8, 35), (20, 10, 1), (1000, 20, 35), (12, 6, 100)]


@pytest.mark.parametrize(("length", "bsz", "bptt"), CASES)
def test_matches_pytorch_transcription(length, bsz, bptt):
    stream = np.random.default_rng(length).integers(0, 50, size=length).astype(np.int32)
    ours = batchify(stream, bsz)
    ref = _pt_batchify(stream, bsz)
    assert ours.shape == (bsz, length // bsz) and ours.dtype == np.int32
    np.testing.assert_array_equal(ours, ref.T)
    ref_starts = list(range(0, ref.shape[0] - 1, bptt))
    assert num_chunks(ours.shape[1], bptt) == len(ref_starts)
    for k, i in enumerate(ref_starts):
        x, y = lm_chunk(ours, k, bptt)
        rx, ry = _pt_get_batch(ref, i, bptt)
        np.testing.assert_array_equal(x, rx.T)
        np.testing.assert_array_equal(y.T.reshape(-1), ry)  # PyTorch flattens time-major
        assert x.shape == y.shape == (bsz, min(bptt, ours.shape[1] - 1 - i))


def test_matches_torch_itself():
    torch = pytest.importorskip("torch")
    stream = np.arange(103, dtype=np.int64)
    t = torch.from_numpy(stream)
    bsz, bptt = 4, 6
    nbatch = t.size(0) // bsz
    tb = t.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()
    ours = batchify(stream, bsz)
    np.testing.assert_array_equal(ours, tb.numpy().T)
    for k, i in enumerate(range(0, tb.size(0) - 1, bptt)):
        seq_len = min(bptt, len(tb) - 1 - i)
        x, y = lm_chunk(ours, k, bptt)
        np.testing.assert_array_equal(x, tb[i : i + seq_len].numpy().T)
        np.testing.assert_array_equal(y.T.reshape(-1), tb[i + 1 : i + 1 + seq_len].view(-1).numpy())


def test_rows_are_contiguous_segments_and_chunks_tile():
    stream = np.arange(50, dtype=np.int32)
    b = batchify(stream, 4)
    np.testing.assert_array_equal(b[1], np.arange(12, 24))
    b[0, 0] = -1
    assert stream[0] == 0  # a copy, not a view
    xs, ys = zip(*iter_lm_chunks(b, 5))
    np.testing.assert_array_equal(np.concatenate(xs, axis=1), b[:, :-1])
    np.testing.assert_array_equal(np.concatenate(ys, axis=1), b[:, 1:])
    # resuming mid-epoch yields the same chunks as the full pass from that index
    rest = list(iter_lm_chunks(b, 5, start=2))
    assert len(rest) == len(xs) - 2
    for (x, y), rx, ry in zip(rest, xs[2:], ys[2:]):
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)
    assert list(iter_lm_chunks(b, 5, start=len(xs))) == []


def test_errors():
    with pytest.raises(ValueError, match="too short"):
        batchify(np.arange(7), 4)
    batchify(np.arange(8), 4)
    with pytest.raises(ValueError, match="1-D integer"):
        batchify(np.arange(8.0), 2)
    with pytest.raises(ValueError, match="1-D integer"):
        batchify(np.zeros((2, 4), dtype=np.int32), 2)
    with pytest.raises(ValueError, match="batch_size"):
        batchify(np.arange(8), 0)
    with pytest.raises(ValueError, match="bptt"):
        num_chunks(10, 0)
    with pytest.raises(ValueError, match="2 columns"):
        num_chunks(1, 5)
    b = batchify(np.arange(40), 4)  # 10 columns -> 9 positions -> 3 chunks of 3
    assert num_chunks(10, 3) == 3
    with pytest.raises(IndexError, match="out of range"):
        lm_chunk(b, 3, 3)
    with pytest.raises(IndexError, match="out of range"):
        lm_chunk(b, -1, 3)
    with pytest.raises(IndexError, match="start chunk"):
        next(iter_lm_chunks(b, 3, start=4))
    with pytest.raises(ValueError, match="batchified"):
        lm_chunk(np.arange(10), 0, 3)
    with pytest.raises(ValueError, match="one shape"):
        tag_chunk(b, b[:, :-1], 0, 3)
    with pytest.raises(ValueError, match="target"):
        tag_chunk(b, b, 0, 3, target="previous")


def _toy_tagged() -> TaggedCorpus:
    sents = [["the", "cat", "sat"], ["a", "dog", "ran", "off"], ["cats", "nap"], ["ok"]] * 3
    tag_of = {"the": "DT", "a": "DT", "cat": "NN", "dog": "NN", "cats": "NNS"}
    tags = [[tag_of.get(w, "VB") for w in s] for s in sents]
    return TaggedCorpus(sentences=sents, tags={"pos": tags})


def test_encode_tagged_aligns_eos():
    corpus = _toy_tagged()
    vocab = Vocab.build(corpus.sentences)
    tv = Vocab.build(corpus.tags["pos"])
    tokens, tags = encode_tagged(corpus, vocab, tv, "pos")
    np.testing.assert_array_equal(tokens, vocab.encode_corpus(corpus.sentences))
    assert tokens.shape == tags.shape == (corpus.num_tokens + len(corpus.sentences),)
    assert tags.dtype == np.int32
    np.testing.assert_array_equal(tokens == vocab.eos_id, tags == tv.eos_id)
    words, labels = vocab.decode(tokens), tv.decode(tags)
    flat = [(w, t) for s, ts in zip(corpus.sentences, corpus.tags["pos"]) for w, t in zip(s, ts)]
    assert [(w, t) for w, t in zip(words, labels) if w != "<eos>"] == flat
    t2, g2 = encode_tagged(corpus, vocab, tv, "pos", add_eos=False)
    assert t2.shape == g2.shape == (corpus.num_tokens,)
    with pytest.raises(KeyError, match="genre"):
        encode_tagged(corpus, vocab, tv, "genre")
    with pytest.raises(ValueError, match="not aligned"):
        TaggedCorpus(sentences=[["a", "b"]], tags={"pos": [["DT"]]})


@pytest.mark.parametrize("target", ["next", "current"])
def test_tag_chunks_line_up_with_lm_chunks(target):
    corpus = _toy_tagged()
    vocab = Vocab.build(corpus.sentences)
    tv = Vocab.build(corpus.tags["pos"])
    tokens, tags = encode_tagged(corpus, vocab, tv, "pos")
    tb, gb = batchify(tokens, 3), batchify(tags, 3)
    # the tag of a token is a function of the token here: a lookup table by id
    table = np.full(len(vocab), -1)
    table[tokens] = tags
    bptt = 4
    n = num_chunks(tb.shape[1], bptt)
    assert n >= 2
    for k in range(n):
        lm_x, lm_y = lm_chunk(tb, k, bptt)
        x, g = tag_chunk(tb, gb, k, bptt, target=target)
        np.testing.assert_array_equal(x, lm_x)
        np.testing.assert_array_equal(g, table[lm_y if target == "next" else lm_x])
    chunks = list(iter_tag_chunks(tb, gb, bptt, start=1, target=target))
    assert len(chunks) == n - 1
    np.testing.assert_array_equal(chunks[0][1], tag_chunk(tb, gb, 1, bptt, target)[1])


def test_tag_chunks_on_ewt_dev(data_dir):
    path = data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
    if not path.is_file():
        pytest.skip("UD English-EWT not available")
    sents = read_conllu(path)
    corpus = TaggedCorpus(
        sentences=[list(s.words) for s in sents], tags={"xpos": [list(s.xpos) for s in sents]}
    )
    vocab, tv = Vocab.build(corpus.sentences), Vocab.build(corpus.tags["xpos"])
    tokens, tags = encode_tagged(corpus, vocab, tv, "xpos")
    assert tokens.shape == (25147 + 2001,)
    tb, gb = batchify(tokens, 16), batchify(tags, 16)
    flat_words = vocab.decode(tb.reshape(-1))
    flat_tags = tv.decode(gb.reshape(-1))
    # words and tags stay paired after batchify: every <eos> has the <eos> tag and
    # a word's tag is one of the tags that word carries in the corpus
    pairs = {(w, t) for s in sents for w, t in zip(s.words, s.xpos)} | {("<eos>", "<eos>")}
    assert all(p in pairs for p in zip(flat_words, flat_tags))
    for k in (0, 17, num_chunks(tb.shape[1], 35) - 1):
        x, g = tag_chunk(tb, gb, k, 35)
        lm_x, lm_y = lm_chunk(tb, k, 35)
        np.testing.assert_array_equal(x, lm_x)
        s = k * 35
        np.testing.assert_array_equal(g, gb[:, s + 1 : s + 1 + x.shape[1]])
        np.testing.assert_array_equal(lm_y == vocab.eos_id, g == tv.eos_id)
