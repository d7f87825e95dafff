"""Streaming corpus encoding and its cache (quasirnn.data.stream): same ids as the plain reader, a
cache that a second run reads, in the user cache only (never beside the data), keyed by content, and
memory near the encoded array's size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import quasirnn.data.stream as stream
from quasirnn.data import UNK_TOKEN, Vocabulary, load_corpus, read_tokens
from quasirnn.data.stream import cached_encode, encode_stream, file_key
from quasirnn.data.synthetic import write_zipf_corpus
from quasirnn.data.lm_corpus import SPLITS, find_split_file
from quasirnn.errors import DataError


@pytest.fixture(autouse=True)
def user_cache(monkeypatch, tmp_path):
    """A scratch user cache of this test only; returns its corpora folder."""
    monkeypatch.setenv("QUASIRNN_CACHE", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache" / "corpora"


def listing(directory: Path) -> list[str]:
    """Every path under ``directory``, hidden ones included."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def reference_corpus(directory):
    """Today's reader: a list of every token string, then a lookup per token (the old load_corpus)."""
    vocab = Vocabulary()
    splits = {"train": [vocab.add(t) for t in read_tokens(find_split_file(directory, "train"))]}
    for split in ("valid", "test"):
        tokens = read_tokens(find_split_file(directory, split))
        splits[split] = [vocab.stoi.get(t, vocab.stoi.get(UNK_TOKEN)) for t in tokens]
    return splits, vocab


def test_streaming_reader_gives_the_ids_of_the_plain_reader_on_real_ptb(real_ptb, user_cache):
    expected, vocab = reference_corpus(real_ptb)
    before = listing(real_ptb)
    for attempt in ("first read", "cached read"):
        corpus = load_corpus(real_ptb)
        assert corpus.vocab.itos == vocab.itos and len(corpus.vocab) == 10_000, attempt
        for split in SPLITS:
            assert corpus.split(split).dtype == torch.long
            assert corpus.split(split).tolist() == expected[split], (attempt, split)
    # in the user cache, nothing beside the data; no temporary file left
    assert listing(real_ptb) == before
    assert {p.name.split(".")[1] for p in user_cache.iterdir()} == {"test", "train", "valid"}
    assert not [p for p in user_cache.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_data_folder_gets_its_cache_in_the_user_cache(tmp_path, user_cache):
    data = tmp_path / "ro"
    data.mkdir()
    for split in SPLITS:
        (data / f"{split}.txt").write_text("a b <unk>\nb a\n")
    data.chmod(0o555)
    try:
        corpus = load_corpus(data)
    finally:
        data.chmod(0o755)
    assert corpus.train.tolist() == [0, 1, 2, 3, 1, 0, 3]
    assert listing(data) == ["test.txt", "train.txt", "valid.txt"] and len(list(user_cache.iterdir())) == 3


@pytest.mark.parametrize("text", ["a b\r\nc\rd\n", "a\x0bb\u2028c\n\n\nd", "  x  \n\t\n y", "<eos> a <unk>\n"])
def test_streaming_reader_matches_the_plain_reader_on_odd_text(tmp_path, text):
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    stoi = {}
    ids = encode_stream(path, stoi, grow=True)
    vocab = Vocabulary()
    assert ids.dtype == torch.int32 and ids.tolist() == [vocab.add(t) for t in read_tokens(path)]
    assert list(stoi) == vocab.itos


def test_blocks_of_lines_join_up(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "_BLOCK", 7)  # blocks far shorter than the file
    path = write_zipf_corpus(tmp_path / "train.txt", 5_000, vocab_size=300, line_length=13)
    vocab = Vocabulary()
    expected = [vocab.add(t) for t in read_tokens(path)]
    assert encode_stream(path, {}, grow=True).tolist() == expected


def test_cache_goes_to_the_user_cache_never_beside_writable_data_and_is_read_back(tmp_path, monkeypatch,
                                                                                   user_cache):
    data = tmp_path / "corpus"
    data.mkdir()
    for split in SPLITS:
        write_zipf_corpus(data / f"{split}.txt", 3_000, vocab_size=500, seed=SPLITS.index(split))
    # valid/test words unseen in train map to <unk>
    (data / "train.txt").write_text((data / "train.txt").read_text() + f"{UNK_TOKEN}\n")
    first = load_corpus(data)
    assert first.valid.max() < len(first.vocab) and (first.valid == first.vocab.stoi[UNK_TOKEN]).any()
    files = sorted(p.name for p in user_cache.iterdir())
    assert len(files) == 3 and all(f.endswith(".v1.pt") for f in files)
    assert listing(data) == ["test.txt", "train.txt", "valid.txt"]  # the data folder is writable, and left alone

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(stream, "encode_stream", no_reading)
    second = load_corpus(data, dtype=torch.int32)
    assert second.vocab.itos == first.vocab.itos and second.train.dtype == torch.int32
    for split in SPLITS:
        assert torch.equal(second.split(split).long(), first.split(split))


def test_a_changed_corpus_is_encoded_again_even_with_the_same_size_and_time(tmp_path, user_cache):
    data = tmp_path / "corpus"
    data.mkdir()
    texts = {"train": "a b <unk>\n", "valid": "b a zebra\n", "test": "a\n"}
    for split, text in texts.items():
        (data / f"{split}.txt").write_text(text)
    first = load_corpus(data)
    assert first.vocab.itos == ["a", "b", "<unk>", "<eos>"] and first.valid.tolist() == [1, 0, 2, 3]
    stamp = (data / "train.txt").stat()
    (data / "train.txt").write_text("b a <unk>\n")  # same size; the time is set back below
    os.utime(data / "train.txt", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    second = load_corpus(data)
    # train is read again, and so are valid and test (unchanged, but their ids follow train's vocabulary)
    assert second.vocab.itos == ["b", "a", "<unk>", "<eos>"]
    assert second.train.tolist() == [0, 1, 2, 3] and second.valid.tolist() == [0, 1, 2, 3]
    assert second.test.tolist() == [1, 3]
    assert len(list(user_cache.iterdir())) == 6  # both versions' files; the old ones are no longer read


def test_cache_key_follows_the_content_not_the_name_or_time(tmp_path, monkeypatch, user_cache):
    path = tmp_path / "train.txt"
    path.write_text("a b c\n")
    key = file_key(path)
    path.write_text("a b d\n")  # same size, other words
    assert file_key(path) != key and file_key(path).startswith("6-")
    ids, _ = cached_encode(path, {}, grow=True)
    stoi = {}
    ids2, _ = cached_encode(path, stoi, grow=True)
    assert ids2.tolist() == ids.tolist() == [0, 1, 2, 3] and list(stoi) == ["a", "b", "d", "<eos>"]
    # a damaged cache file is ignored and rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.txt", "user-cache"]  # nothing beside train.txt
    (cache_file,) = user_cache.iterdir()
    cache_file.write_bytes(b"not a torch file")
    assert cached_encode(path, {}, grow=True)[0].tolist() == [0, 1, 2, 3]
    assert cache_file.stat().st_size > 100


def test_unknown_word_without_unk_and_empty_file(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a zebra\n")
    with pytest.raises(DataError, match=r"word 'zebra' is not in the training vocabulary, which has no <unk>"):
        encode_stream(path, {"a": 0, "<eos>": 1})
    path.write_text(" \n\t\n")
    with pytest.raises(DataError, match=r"v\.txt is empty"):
        encode_stream(path, {}, grow=True)
    with pytest.raises(DataError, match="pass an empty stoi"):
        cached_encode(path, {"a": 0}, grow=True)


MEASURE = """
import json, resource, sys, time
from quasirnn.data.stream import encode_stream
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
before = rss_mb()
start = time.perf_counter()
ids = encode_stream(sys.argv[1], {}, grow=True)
print(json.dumps({"tokens": ids.numel(), "seconds": time.perf_counter() - start, "before_mb": before,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux) to measure memory")
def test_a_20m_token_zipfian_corpus_is_read_in_a_small_multiple_of_its_encoded_size(tmp_path):
    path = write_zipf_corpus(tmp_path / "train.txt", 20_000_000, vocab_size=50_000)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["tokens"] == 20_000_000 + 20_000_000 // 25  # one <eos> per line of 25 words
    encoded_mb = result["tokens"] * 4 / 2**20  # 80 MB of int32
    grown = result["peak_mb"] - result["before_mb"]
    # measured 107-326 MB alone, but up to 815 MB inside the full suite (not understood yet: see
    # BENCHMARKS.md); the old reader's list of 20.8 M token strings alone takes about 1.37 GB
    # (8 B pointer + ~58 B str each, over 17x the encoded array), which this bound still refuses
    assert grown < 15 * encoded_mb, result
