"""Parallel text reading and encoding (quasirnn.data.bitext)."""

from __future__ import annotations

import gzip

import pytest

from quasirnn.data.bitext import (
    ParallelSplit,
    find_parallel_file,
    read_lines,
    read_parallel,
)
from quasirnn.data.vocabulary import EOS_ID, CharVocab
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


def test_real_slice_encodes_with_eos_and_max_len(multi30k_slice):
    src, tgt = read_parallel(multi30k_slice / "train.de.gz", multi30k_slice / "train.en.gz")
    assert len(src) == len(tgt) == 400
    sv, tv = CharVocab.build(src), CharVocab.build(tgt)
    split = ParallelSplit.encode(src, tgt, sv, tv, max_len=80)
    assert 0 < len(split) < 400
    assert all(len(s) <= 80 and len(t) <= 80 and t[-1] == EOS_ID for s, t in zip(split.src, split.tgt))
    assert all(tv.decode(t) == text for t, text in zip(split.tgt, split.tgt_text))
    assert split.num_chars() == sum(map(len, split.src_text)) + sum(len(t) + 1 for t in split.tgt_text)
