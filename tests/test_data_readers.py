"""Tests for the corpus readers: PTB, plain text, CoNLL-U (EWT), Brown, loaders."""

from __future__ import annotations

from collections import Counter, deque

import numpy as np
import pytest

from jaxdyn.data.brown import brown_splits, read_brown
from jaxdyn.data.conllu import (
    RELATIONS,
    dependency_distance,
    read_conllu,
    relation,
    relation_matrix,
)
from jaxdyn.data.corpora import load_brown, load_ewt, load_lm_corpus
from jaxdyn.data.paths import CorpusError, CorpusNotFoundError, resolve_data_dir
from jaxdyn.data.ptb import load_ptb
from jaxdyn.data.text import read_text
from jaxdyn.data.vocab import Vocab

GENRES = {"answers", "email", "newsgroup", "reviews", "weblog"}
BROWN_CATEGORIES = {
    "news",
    "editorial",
    "reviews",
    "religion",
    "hobbies",
    "lore",
    "belles_lettres",
    "government",
    "learned",
    "fiction",
    "mystery",
    "science_fiction",
    "adventure",
    "romance",
    "humor",
}


# --------------------------------------------------------------------- PTB
def test_ptb_counts_and_vocab():
    ptb = load_ptb()
    sizes = {k: (len(v), sum(len(s) for s in v)) for k, v in ptb.items()}
    assert sizes == {
        "train": (42068, 887521),
        "valid": (3370, 70390),
        "test": (3761, 78669),
    }
    assert ptb["train"][1][:3] == ["pierre", "<unk>", "N"]
    vocab = Vocab.build(ptb["train"])
    assert len(vocab) == 10000  # 9,999 word types (incl. <unk>) + <eos>
    # the token count of PyTorch's word_language_model PTB training stream
    assert vocab.encode_corpus(ptb["train"]).shape == (929589,)
    lm = load_lm_corpus("ptb")
    assert lm["valid"] == ptb["valid"]


# -------------------------------------------------------------------- text
def test_read_text(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"Hello  World\r\n\n   \nsecond\tline here\n")
    assert read_text(p) == [["Hello", "World"], ["second", "line", "here"]]
    assert read_text(p, lowercase=True)[0] == ["hello", "world"]


def test_read_text_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(CorpusError, match=r"empty\.txt: empty corpus"):
        read_text(empty)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ok line\nsecond\ncaf\xe9\n")
    with pytest.raises(CorpusError, match=r"latin1\.txt:3: not valid UTF-8"):
        read_text(bad)
    with pytest.raises(CorpusNotFoundError, match=r"missing\.txt") as e:
        read_text(tmp_path / "missing.txt")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)


def test_load_lm_corpus_folder_and_errors(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text(f"The {split}\nTwo words\n")
    out = load_lm_corpus(tmp_path)
    assert out["valid"] == [["The", "valid"], ["Two", "words"]]
    assert load_lm_corpus(str(tmp_path), lowercase=True)["test"][0] == ["the", "test"]
    (tmp_path / "valid.txt").unlink()
    with pytest.raises(CorpusNotFoundError, match=r"valid\.txt"):
        load_lm_corpus(tmp_path)
    with pytest.raises(CorpusNotFoundError, match="not a known corpus"):
        load_lm_corpus("wikitext-103")
    with pytest.raises(CorpusError, match="needs data_dir"):
        load_lm_corpus("ewt")


# ------------------------------------------------------------- data folder
def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXDYN_DATA_DIR", raising=False)
    assert resolve_data_dir(str(tmp_path)) == tmp_path
    with pytest.raises(CorpusNotFoundError) as e:
        resolve_data_dir(None)
    msg = str(e.value)
    assert "universaldependencies.org" in msg and "UD_English-EWT" in msg
    assert "en_ewt-ud-train.conllu" in msg and "cats.txt" in msg and "brown" in msg
    monkeypatch.setenv("JAXDYN_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    with pytest.raises(CorpusNotFoundError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")


# ----------------------------------------------------------------- CoNLL-U
GOOD_CONLLU = """\
# newdoc id = doc1
# sent_id = email-doc1-0001
# text = I can't go.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_
2\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
4.1\twent\tgo\tVERB\tVBD\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = reviews-x-0002
1\tFine\tfine\tADJ\tJJ\t_\t0\troot\t_\t_
"""


def _write_variant(tmp_path, line: int, new: str | None, *, insert: bool = False):
    lines = GOOD_CONLLU.split("\n")
    if insert:
        lines.insert(line - 1, new)
    else:
        lines[line - 1] = new
    p = tmp_path / "bad.conllu"
    p.write_text("\n".join(lines))
    return p


def _cols(line: int, col: int, value: str) -> str:
    cols = GOOD_CONLLU.split("\n")[line - 1].split("\t")
    cols[col] = value
    return "\t".join(cols)


def test_read_conllu_small(tmp_path):
    p = tmp_path / "good.conllu"
    p.write_text(GOOD_CONLLU)
    s1, s2 = read_conllu(p)
    assert s1.words == ("I", "ca", "n't", "go", ".")
    assert s1.lemmas == ("I", "can", "not", "go", ".")
    assert s1.upos == ("PRON", "AUX", "PART", "VERB", "PUNCT")
    assert s1.xpos == ("PRP", "MD", "RB", "VB", ".")
    assert s1.heads == (4, 4, 4, 0, 4)
    assert s1.deprels == ("nsubj", "aux", "advmod", "root", "punct")
    assert (s1.sent_id, s1.doc_id, s1.genre, s1.line) == ("email-doc1-0001", "doc1", "email", 1)
    assert s1.text == "I can't go."
    assert (s2.words, s2.doc_id, s2.genre, s2.line, len(s2)) == (
        ("Fine",),
        "doc1",
        "reviews",
        12,
        1,
    )


@pytest.mark.parametrize(
    ("line", "new", "insert", "err_line", "match"),
    [
        (
            7,
            "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_",
            False,
            7,
            "10 tab-separated columns, found 9",
        ),
        (6, _cols(6, 6, "x"), False, 6, "HEAD 'x' is not an integer"),
        (6, _cols(6, 6, "_"), False, 6, "not an integer"),
        (10, _cols(10, 6, "9"), False, 10, "head 9 out of range"),
        (4, _cols(4, 6, "1"), False, 4, "own head"),
        (7, _cols(7, 0, "4"), False, 7, "out of sequence"),
        (4, _cols(4, 0, "x"), False, 4, "invalid token ID"),
        (10, _cols(10, 6, "0"), False, 1, "exactly one root"),
        (5, "# a comment", True, 5, "comment line inside a sentence"),
        (13, "1 Fine fine ADJ JJ _ 0 root _ _", False, 13, "found 1"),
    ],
)
def test_read_conllu_errors_name_file_and_line(tmp_path, line, new, insert, err_line, match):
    p = _write_variant(tmp_path, line, new, insert=insert)
    with pytest.raises(CorpusError, match=match) as e:
        read_conllu(p)
    assert f"bad.conllu:{err_line}:" in str(e.value)


def test_read_conllu_cycle(tmp_path):
    lines = GOOD_CONLLU.split("\n")
    lines[3] = _cols(4, 6, "2")  # I -> ca
    lines[5] = _cols(6, 6, "1")  # ca -> I : cycle 1 <-> 2
    p = tmp_path / "cyc.conllu"
    p.write_text("\n".join(lines))
    with pytest.raises(CorpusError, match=r"cyc\.conllu:1: dependency cycle"):
        read_conllu(p)


def test_read_conllu_empty_and_missing(tmp_path):
    p = tmp_path / "empty.conllu"
    p.write_text("")
    with pytest.raises(CorpusError, match=r"empty\.conllu: empty corpus"):
        read_conllu(p)
    p.write_text("# only a comment\n\n")
    with pytest.raises(CorpusError, match=r"empty\.conllu:1: sentence block without"):
        read_conllu(p)
    with pytest.raises(CorpusNotFoundError, match=r"nope\.conllu"):
        read_conllu(tmp_path / "nope.conllu")


# Hand-made tree, 1-based heads: 2 is the root; 1 -> 2, 3 -> 2, 5 -> 3, 4 -> 5, 6 -> 5.
TREE = (2, 0, 2, 5, 3, 5)
TREE_DIST = np.array(
    [
        [0, 1, 2, 4, 3, 4],
        [1, 0, 1, 3, 2, 3],
        [2, 1, 0, 2, 1, 2],
        [4, 3, 2, 0, 1, 2],
        [3, 2, 1, 1, 0, 1],
        [4, 3, 2, 2, 1, 0],
    ]
)


def _bfs_distances(heads) -> np.ndarray:
    """Independent reference: BFS from every word over the undirected tree."""
    n = len(heads)
    adj = [[] for _ in range(n)]
    for i, h in enumerate(heads):
        if h:
            adj[i].append(h - 1)
            adj[h - 1].append(i)
    out = np.full((n, n), -1)
    for src in range(n):
        out[src, src] = 0
        q = deque([src])
        while q:
            u = q.popleft()
            for v in adj[u]:
                if out[src, v] < 0:
                    out[src, v] = out[src, u] + 1
                    q.append(v)
    return out


def test_dependency_distance_hand_made_tree():
    d = dependency_distance(TREE)
    np.testing.assert_array_equal(d, TREE_DIST)
    np.testing.assert_array_equal(_bfs_distances(TREE), TREE_DIST)
    np.testing.assert_array_equal(dependency_distance([0]), [[0]])


def test_relation_hand_made_tree():
    assert relation(TREE, 0, 1) == relation(TREE, 1, 0) == "head-dependent"
    assert relation(TREE, 4, 3) == "head-dependent"
    assert relation(TREE, 1, 4) == relation(TREE, 4, 1) == "ancestor"
    assert relation(TREE, 2, 3) == "ancestor"
    assert relation(TREE, 1, 3) == "ancestor"
    assert relation(TREE, 3, 5) == "other"  # siblings
    assert relation(TREE, 0, 2) == "other"
    assert relation(TREE, 0, 4) == "other"
    m = relation_matrix(TREE)
    assert m.shape == (6, 6) and (np.diag(m) == -1).all()
    for i in range(6):
        for j in range(6):
            if i != j:
                assert RELATIONS[m[i, j]] == relation(TREE, i, j)
                # head-dependent <=> distance 1
                assert (m[i, j] == 1) == (TREE_DIST[i, j] == 1)
    with pytest.raises(ValueError, match="itself"):
        relation(TREE, 2, 2)
    with pytest.raises(ValueError, match="out of range"):
        relation(TREE, 0, 6)


@pytest.mark.parametrize(
    ("heads", "match"),
    [
        ((2, 1), "exactly one root"),
        ((0, 0), "exactly one root"),
        ((0, 3), "out of range"),
        ((0, 2), "own head"),
        ((0, 3, 2), "cycle"),
    ],
)
def test_tree_functions_reject_non_trees(heads, match):
    with pytest.raises(ValueError, match=match):
        dependency_distance(heads)
    with pytest.raises(ValueError, match=match):
        relation_matrix(heads)


# --------------------------------------------------------------------- EWT
@pytest.fixture(scope="module")
def ewt(data_dir):
    root = data_dir / "ud-english-ewt"
    if not root.is_dir():
        pytest.skip("UD English-EWT not available")
    return {s: read_conllu(root / f"en_ewt-ud-{s}.conllu") for s in ("train", "dev", "test")}


def test_ewt_counts(ewt):
    sizes = {k: (len(v), sum(len(s) for s in v)) for k, v in ewt.items()}
    assert sizes == {"train": (12544, 204577), "dev": (2001, 25147), "test": (2077, 25094)}
    docs = {k: len({s.doc_id for s in v}) for k, v in ewt.items()}
    assert docs == {"train": 540, "dev": 318, "test": 316}
    first = ewt["train"][0]
    assert first.words[:3] == ("Al", "-", "Zaman")
    assert first.heads[:4] == (0, 3, 1, 7)
    assert first.doc_id.startswith("weblog-juancole.com")


def test_ewt_genres(ewt):
    for split in ewt.values():
        assert {s.genre for s in split} == GENRES
        assert all(s.sent_id.startswith(s.genre + "-") for s in split)
        assert all(s.doc_id is not None and s.doc_id.startswith(s.genre) for s in split)
    assert Counter(s.genre for s in ewt["train"]) == {
        "email": 3770,
        "reviews": 2725,
        "answers": 2631,
        "newsgroup": 1833,
        "weblog": 1585,
    }


def test_ewt_dependency_distance_matches_bfs(ewt):
    for s in ewt["dev"][:400]:
        d = dependency_distance(s.heads)
        np.testing.assert_array_equal(d, _bfs_distances(s.heads))
        np.testing.assert_array_equal(d, d.T)


def test_load_ewt(data_dir, ewt):
    if not (data_dir / "ud-english-ewt").is_dir():
        pytest.skip("UD English-EWT not available")
    corpora = load_ewt(data_dir)
    for split, name in (("train", "train"), ("valid", "dev"), ("test", "test")):
        c, ref = corpora[split], ewt[name]
        assert len(c.sentences) == len(ref) and c.num_tokens == sum(len(s) for s in ref)
        assert set(c.tags) == {"xpos", "upos", "deprel", "genre"}
        assert c.sentences[5] == [w.lower() for w in ref[5].words]
        assert c.tags["xpos"][5] == list(ref[5].xpos)
        assert c.tags["genre"][5] == [ref[5].genre] * len(ref[5])
        assert c.heads[5] == ref[5].heads
        assert {g for s in c.tags["genre"] for g in s} == GENRES


def test_load_ewt_small_folder(tmp_path):
    # the EWT folder itself may be passed; lowercase=False keeps the forms
    for name in ("train", "dev", "test"):
        (tmp_path / f"en_ewt-ud-{name}.conllu").write_text(GOOD_CONLLU)
    corpora = load_ewt(tmp_path, lowercase=False)
    assert corpora["valid"].sentences == [["I", "ca", "n't", "go", "."], ["Fine"]]
    assert corpora["test"].tags["genre"] == [["email"] * 5, ["reviews"]]
    assert corpora["train"].tags["deprel"][1] == ["root"]
    assert load_ewt(tmp_path)["train"].sentences[0][0] == "i"
    assert load_lm_corpus("ewt", tmp_path)["train"][1] == ["fine"]
    (tmp_path / "en_ewt-ud-dev.conllu").write_text(GOOD_CONLLU.replace("email-doc1-0001", "nodash"))
    with pytest.raises(CorpusError, match=r"en_ewt-ud-dev\.conllu:1: sentence has no genre"):
        load_ewt(tmp_path)


# ------------------------------------------------------------------- Brown
@pytest.fixture(scope="module")
def brown(data_dir):
    root = data_dir / "brown"
    if not root.is_dir():
        pytest.skip("Brown corpus not available")
    return read_brown(root)


def test_brown_counts(brown):
    assert len(brown) == 500
    assert sum(d.num_tokens for d in brown) == 1161192
    assert sum(len(d.sentences) for d in brown) == 57340
    assert {d.category for d in brown} == BROWN_CATEGORIES
    cats = Counter(d.category for d in brown)
    assert cats["learned"] == 80 and cats["science_fiction"] == 6 and cats["news"] == 44
    assert (brown[0].doc_id, brown[-1].doc_id) == ("ca01", "cr09")
    assert brown[0].sentences[0][:3] == [("The", "at"), ("Fulton", "np-tl"), ("County", "nn-tl")]
    words = {w for d in brown for s in d.sentences for w, _ in s}
    assert "1/2" in words and "/" in words  # tag after the LAST '/'


def test_brown_splits(brown):
    sp = brown_splits(brown)
    assert {k: len(v) for k, v in sp.items()} == {"train": 400, "valid": 50, "test": 50}
    assert [d.doc_id for d in sp["valid"][:2]] == ["ca09", "ca19"]
    assert [d.doc_id for d in sp["test"][:2]] == ["ca10", "ca20"]
    assert {d.category for d in sp["train"]} == BROWN_CATEGORIES
    ids = [d.doc_id for v in sp.values() for d in v]
    assert sorted(ids) == sorted(d.doc_id for d in brown)
    with pytest.raises(ValueError, match=">= 2"):
        brown_splits(brown, valid_every=1)
    with pytest.raises(ValueError, match="empty"):
        brown_splits(brown[:5])


def test_load_brown(data_dir, brown):
    if not (data_dir / "brown").is_dir():
        pytest.skip("Brown corpus not available")
    corpora = load_brown(data_dir)
    sizes = {k: (len(v.sentences), v.num_tokens) for k, v in corpora.items()}
    assert sizes == {
        "train": (46175, 929728),
        "valid": (5523, 115661),
        "test": (5642, 115803),
    }
    assert set(corpora["train"].tags) == {"pos", "genre"}
    assert corpora["train"].sentences[0][:2] == ["the", "fulton"]
    assert corpora["train"].tags["pos"][0][:2] == ["at", "np-tl"]
    assert corpora["test"].tags["genre"][0][0] == "news"
    assert corpora["train"].heads is None


def _brown_folder(tmp_path, cats: str, docs: dict[str, str]):
    root = tmp_path / "brown"
    root.mkdir()
    (root / "cats.txt").write_text(cats)
    for name, text in docs.items():
        (root / name).write_text(text)
    return root


def test_read_brown_small(tmp_path):
    root = _brown_folder(
        tmp_path,
        "ca01 news\n\ncb01 editorial\n",
        {
            "ca01": "\n\n\tThe/at 1/2/cd //in ./.\n\n\n\tA/at b/nn\n",
            "cb01": "\tX/np\n",
            "README": "not a document",
        },
    )
    docs = read_brown(root)
    assert [(d.doc_id, d.category) for d in docs] == [("ca01", "news"), ("cb01", "editorial")]
    assert docs[0].sentences == [
        [("The", "at"), ("1/2", "cd"), ("/", "in"), (".", ".")],
        [("A", "at"), ("b", "nn")],
    ]


@pytest.mark.parametrize(
    ("cats", "doc", "where", "match"),
    [
        ("ca01 news\n", "\tThe/at\n\n\tno_tag_here ./.\n", "ca01:3:", "not of the form word/tag"),
        ("ca01 news\n", "\tThe/at word/\n", "ca01:1:", "not of the form word/tag"),
        ("ca01 news\n", "\t/nn\n", "ca01:1:", "not of the form word/tag"),
        ("ca01 news\nzz99 news\n", "\tThe/at\n", "cats.txt:2:", "unknown document 'zz99'"),
        ("ca01 news\nca01 news\n", "\tThe/at\n", "cats.txt:2:", "already listed on line 1"),
        ("ca01 news extra\n", "\tThe/at\n", "cats.txt:1:", "found 3 fields"),
        ("\n", "\tThe/at\n", "cats.txt:", "empty category list"),
        ("ca01 news\n", "\n\n", "ca01:", "empty document"),
    ],
)
def test_read_brown_errors(tmp_path, cats, doc, where, match):
    root = _brown_folder(tmp_path, cats, {"ca01": doc})
    with pytest.raises(CorpusError, match=match) as e:
        read_brown(root)
    assert where in str(e.value)


def test_read_brown_missing(tmp_path):
    with pytest.raises(CorpusNotFoundError, match="not found"):
        read_brown(tmp_path / "nothing")
    (tmp_path / "b").mkdir()
    with pytest.raises(CorpusNotFoundError, match=r"cats\.txt"):
        read_brown(tmp_path / "b")
    with pytest.raises(CorpusNotFoundError, match="Brown corpus folder"):
        load_brown(tmp_path / "b")
    with pytest.raises(CorpusNotFoundError, match="UD English-EWT"):
        load_ewt(tmp_path / "b")
