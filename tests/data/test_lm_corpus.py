"""Word-level corpus reading, vocabulary, batchify and BPTT windows (quasirnn.data.lm_corpus)."""

from __future__ import annotations

import pytest
import torch

from quasirnn.data import EOS_TOKEN, UNK_TOKEN, Vocabulary, batchify, bptt_batches, encode_file, find_split_file
from quasirnn.data import get_batch, load_corpus, read_tokens, sample_seq_len
from quasirnn.errors import DataError, QuasirnnError


TEXTS = {
    "train": " the cat sat \n the dog <unk> ran \n",
    "valid": " the bird sat \n",  # "bird" is unseen in train
    "test": " a dog \n\n the cat",  # a blank line, and no final newline
}


# ----------------------------------------------------------------------------- parsing


def test_read_tokens_appends_eos_per_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text(" a  b\tc \n\n d\n", encoding="utf-8")
    assert read_tokens(path) == ["a", "b", "c", EOS_TOKEN, EOS_TOKEN, "d", EOS_TOKEN]


def test_read_tokens_last_line_without_newline(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("a b\nc", encoding="utf-8")
    assert read_tokens(path) == ["a", "b", EOS_TOKEN, "c", EOS_TOKEN]


@pytest.mark.parametrize("pattern", ["ptb.{split}.txt", "{split}.txt", "wiki.{split}.tokens"])
def test_load_corpus_file_name_variants(tmp_path, pattern, write_corpus):
    corpus = load_corpus(write_corpus(tmp_path / "c", TEXTS, pattern))
    # vocabulary from train, in order of first appearance, <eos> included
    assert corpus.vocab.itos == ["the", "cat", "sat", EOS_TOKEN, "dog", UNK_TOKEN, "ran"]
    assert corpus.train.dtype == torch.long and corpus.train.dim() == 1
    assert corpus.vocab.decode(corpus.train) == "the cat sat <eos> the dog <unk> ran <eos>".split()
    assert corpus.vocab.decode(corpus.valid) == ["the", UNK_TOKEN, "sat", EOS_TOKEN]  # unseen "bird" -> <unk>
    # "a" unseen
    assert corpus.vocab.decode(corpus.test) == [UNK_TOKEN, "dog", EOS_TOKEN, EOS_TOKEN, "the", "cat", EOS_TOKEN]


def test_ptb_names_take_precedence(tmp_path, write_corpus):
    d = write_corpus(tmp_path / "c", TEXTS, "ptb.{split}.txt")
    (d / "train.txt").write_text("other words entirely\n")
    assert find_split_file(d, "train").name == "ptb.train.txt"
    assert load_corpus(d).vocab.itos[0] == "the"


def test_unknown_word_without_unk_is_an_error(tmp_path, write_corpus):
    d = write_corpus(tmp_path / "c", {"train": "a b\n", "valid": "a zebra\n", "test": "b\n"})
    with pytest.raises(DataError, match=r"ptb\.valid\.txt.*'zebra'"):
        load_corpus(d)


def test_encode_file_grow_adds_words(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("x y x\n")
    vocab = Vocabulary(["y"])
    ids = encode_file(path, vocab, grow=True)
    assert vocab.itos == ["y", "x", EOS_TOKEN]
    assert ids.tolist() == [1, 0, 1, 2]


# ----------------------------------------------------------------------------- errors


def test_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as info:
        load_corpus(missing)
    message = str(info.value)
    assert str(missing) in message and "ptb.train.txt" in message
    assert isinstance(info.value, QuasirnnError)


def test_missing_split_names_expected_files(tmp_path, write_corpus):
    d = write_corpus(tmp_path / "c", {"train": TEXTS["train"], "test": TEXTS["test"]})
    with pytest.raises(DataError) as info:
        load_corpus(d)
    message = str(info.value)
    assert "valid" in message and str(d) in message
    for name in ("ptb.valid.txt", "valid.txt", "wiki.valid.tokens"):
        assert name in message


@pytest.mark.parametrize("content", ["", "  \n\n \t\n"])
def test_empty_file(tmp_path, content, write_corpus):
    d = write_corpus(tmp_path / "c", {**TEXTS, "test": content})
    with pytest.raises(DataError, match=r"ptb\.test\.txt is empty"):
        load_corpus(d)


def test_non_utf8_file(tmp_path, write_corpus):
    d = write_corpus(tmp_path / "c", TEXTS)
    (d / "ptb.train.txt").write_bytes(b"caf\xe9 au lait\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_corpus(d)


def test_unknown_split_name(tmp_path, write_corpus):
    d = write_corpus(tmp_path / "c", TEXTS)
    with pytest.raises(DataError, match="unknown split"):
        find_split_file(d, "dev")


# ----------------------------------------------------------------------------- batching


def test_batchify_columns_are_contiguous_text():
    ids = torch.arange(23)
    data = batchify(ids, 4)
    assert data.shape == (5, 4) and data.dtype == torch.long
    for b in range(4):  # column b is the b-th contiguous piece of the stream
        assert data[:, b].tolist() == list(range(5 * b, 5 * b + 5))


def test_batchify_rejects_bad_input():
    with pytest.raises(ValueError):
        batchify(torch.arange(3), 4)
    with pytest.raises(ValueError):
        batchify(torch.arange(8), 0)
    with pytest.raises(ValueError):
        batchify(torch.zeros(2, 4, dtype=torch.long), 2)


def test_get_batch_targets_are_next_tokens():
    source = batchify(torch.arange(40), 4)  # (10, 4)
    x, y = get_batch(source, 2, 3)
    assert x.shape == y.shape == (3, 4)
    assert torch.equal(y, x + 1)  # arange stream: the next token is id + 1
    x, y = get_batch(source, 7, 5)  # clipped at the end: only T - 1 - 7 = 2 steps left
    assert x.shape == (2, 4) and torch.equal(y, source[8:10])


@pytest.mark.parametrize("variable", [False, True])
def test_bptt_batches_cover_the_stream_once(variable):
    torch.manual_seed(0)
    source = batchify(torch.arange(4 * 101), 4)  # (101, 4)
    positions, seen = [], []
    for pos, x, y in bptt_batches(source, 7, variable=variable):
        positions.append(pos)
        assert torch.equal(x, source[pos : pos + x.size(0)])
        assert torch.equal(y, source[pos + 1 : pos + 1 + x.size(0)])
        seen.append(x)
    assert torch.equal(torch.cat(seen), source[:-1])  # every input step exactly once, in order
    if not variable:
        assert positions == list(range(0, 100, 7))


def test_bptt_batches_start_resumes_mid_stream():
    source = batchify(torch.arange(60), 3)  # (20, 3)
    full = list(bptt_batches(source, 4))
    resumed = list(bptt_batches(source, 4, start=full[2][0]))
    assert [p for p, _, _ in resumed] == [p for p, _, _ in full[2:]]


def test_sample_seq_len_bounds_and_mean():
    gen = torch.Generator().manual_seed(0)
    lengths = [sample_seq_len(70, gen) for _ in range(2000)]
    assert min(lengths) >= 5 and max(lengths) <= 140
    assert 60 < sum(lengths) / len(lengths) < 70  # mostly ~N(70, 5), sometimes ~N(35, 5)
    assert any(l < 50 for l in lengths)  # the half-length windows occur
    assert all(sample_seq_len(3, gen) <= 6 for _ in range(100))


# ----------------------------------------------------------------------------- the real PTB


def test_real_ptb_counts(real_ptb):
    corpus = load_corpus(real_ptb)
    assert len(corpus.vocab) == 10_000
    assert corpus.train.numel() == 929_589
    assert corpus.valid.numel() == 73_760
    assert corpus.test.numel() == 82_430
    assert corpus.vocab.itos[corpus.train[:5].tolist()[0]] == "aer"  # PTB's first word
    eos = corpus.vocab.stoi[EOS_TOKEN]
    assert int((corpus.train == eos).sum()) == 42_068  # one <eos> per line
    assert int(corpus.train.max()) == len(corpus.vocab) - 1
