"""Parallel text reading, character vocabularies and length batching (quasirnn.data.bitext)."""

from __future__ import annotations

import gzip
import random

import pytest
import torch

from quasirnn.data.bitext import (
    BOS,
    EOS,
    PAD,
    UNK,
    CharVocab,
    ParallelSplit,
    find_parallel_file,
    length_batches,
    pad_batch,
    read_lines,
    read_parallel,
)
from quasirnn.errors import DataError


def test_gzip_and_plain_files_read_the_same_lines(tmp_path):
    lines = ["Ein Hund läuft.", "Zwei Männer\tsitzen.", "Größe: 3 m²"]
    (tmp_path / "a.de").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    with gzip.open(tmp_path / "a.de.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    assert read_lines(tmp_path / "a.de") == lines
    assert read_lines(tmp_path / "a.de.gz") == lines
    assert find_parallel_file(tmp_path, "a", "de").name == "a.de.gz"  # gzip first


def test_unequal_line_counts_name_both_files_and_counts(tmp_path):
    (tmp_path / "x.de").write_text("a\nb\nc\n")
    (tmp_path / "x.en").write_text("a\nb\n")
    with pytest.raises(DataError) as info:
        read_parallel(tmp_path / "x.de", tmp_path / "x.en")
    message = str(info.value)
    assert "x.de" in message and "x.en" in message and "3" in message and "2" in message


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_line_is_an_error_naming_file_and_line(tmp_path, empty):
    (tmp_path / "x.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "x.en").write_text(f"one\n{empty}\nthree\n")
    with pytest.raises(DataError, match=r"x\.en: line 2 is empty"):
        read_parallel(tmp_path / "x.de", tmp_path / "x.en")


def test_missing_and_corrupt_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_lines(tmp_path / "nothing.de")
    (tmp_path / "bad.de.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="bad.de.gz"):
        read_lines(tmp_path / "bad.de.gz")
    (tmp_path / "latin.de").write_bytes("Größe".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        read_lines(tmp_path / "latin.de")
    with pytest.raises(DataError, match="val.de.gz"):
        find_parallel_file(tmp_path, "val", "de")


def test_vocabulary_maps_unknown_characters_to_unk_and_round_trips_known_text():
    vocab = CharVocab.build(["abc ab", "cab!"])
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocab.itos[4] in "ab"  # most frequent first
    ids = vocab.encode("ab zß", bos=True, eos=True)
    assert ids[0] == BOS and ids[-1] == EOS
    assert ids[4] == UNK and ids[5] == UNK  # z and ß were never seen
    assert vocab.decode(vocab.encode("cab ab!")) == "cab ab!"
    assert vocab.decode(vocab.encode("a") + [EOS] + vocab.encode("b")) == "a"  # stops at <eos>
    assert len(CharVocab(vocab.chars)) == len(vocab)
    with pytest.raises(ValueError, match="single characters"):
        CharVocab(["ab"])


def test_length_batches_cover_every_index_once_and_group_similar_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(1000)]
    for shuffle in (False, True):
        batches = length_batches(lengths, 32, shuffle=shuffle, rng=random.Random(1), bucket=10)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(1000))
        assert all(len(b) <= 32 for b in batches)
        spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
        assert spread < 20  # random batches of 32 would spread ~90
    first = length_batches(lengths, 32, shuffle=True, rng=random.Random(1))
    second = length_batches(lengths, 32, shuffle=True, rng=random.Random(2))
    assert first != second


def test_pad_batch_right_pads_time_major():
    ids, lengths = pad_batch([[5, 6, 7], [8]])
    assert ids.shape == (3, 2) and ids.dtype == torch.long
    assert ids[:, 0].tolist() == [5, 6, 7] and ids[:, 1].tolist() == [8, PAD, PAD]
    assert lengths.tolist() == [3, 1]
    with pytest.raises(ValueError):
        pad_batch([[1], []])


def test_real_slice_encodes_with_eos_and_max_len(multi30k_slice):
    src, tgt = read_parallel(multi30k_slice / "train.de.gz", multi30k_slice / "train.en.gz")
    assert len(src) == len(tgt) == 400
    sv, tv = CharVocab.build(src), CharVocab.build(tgt)
    split = ParallelSplit.encode(src, tgt, sv, tv, max_len=80)
    assert 0 < len(split) < 400
    assert all(len(s) <= 80 and len(t) <= 80 and t[-1] == EOS for s, t in zip(split.src, split.tgt))
    assert all(tv.decode(t) == text for t, text in zip(split.tgt, split.tgt_text))
    assert split.num_chars() == sum(map(len, split.src_text)) + sum(len(t) + 1 for t in split.tgt_text)
