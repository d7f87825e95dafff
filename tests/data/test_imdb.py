"""IMDb reading (archive and directory, real and synthetic), tokenizer, vocabulary, validation
split, length-bucketed padded batches, and the one-line errors for data that is not IMDb."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from quasirnn.data.imdb import (
    EncodedSplit,
    build_vocab,
    encode,
    load_imdb,
    split_validation,
    tokenize,
)
from quasirnn.data.imdb_reader import LABELS, Review, find_imdb, read_imdb
from quasirnn.data.vocabulary import PAD_TOKEN, UNK_TOKEN
from quasirnn.errors import DataError

# ----------------------------------------------------------------------------- synthetic corpora

TEXTS = {
    ("train", "neg"): {"3_1": "Awful.<br /><br />Truly AWFUL!", "1_4": "boring , dull", "12_2": "bad bad bad"},
    ("train", "pos"): {"0_10": "Great film!", "5_7": "I loved it, don't miss it.", "2_9": "great great acting"},
    ("test", "neg"): {"0_3": "Dreadful plot.", "1_1": "bad zebra"},
    ("test", "pos"): {"7_8": "Wonderful.", "4_10": "great zebra"},
}


def write_aclimdb(root: Path, texts=TEXTS) -> Path:
    for (split, label), files in texts.items():
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (root / "README").write_text("not a review")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabeled, ignored")
    return root


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w:xz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def tar_of(texts=TEXTS, prefix="aclImdb/") -> dict[str, bytes]:
    return {f"{prefix}{split}/{label}/{name}.txt": text.encode() for (split, label), files in texts.items()
            for name, text in files.items()}


@pytest.fixture
def acl_dir(tmp_path) -> Path:
    return write_aclimdb(tmp_path / "aclImdb")


@pytest.fixture
def acl_tar(tmp_path) -> Path:
    return write_tar(tmp_path / "aclImdb_small.tar.xz", tar_of())


# ----------------------------------------------------------------------------- reading


def test_read_directory_labels_ids_ratings_and_order(acl_dir):
    data = read_imdb(acl_dir)
    assert [(r.label, r.id, r.rating) for r in data["train"]] == [
        (0, 1, 4), (0, 3, 1), (0, 12, 2), (1, 0, 10), (1, 2, 9), (1, 5, 7)]  # sorted by (label, id)
    assert {r.split for r in data["train"]} == {"train"} and len(data["test"]) == 4
    assert data["train"][1].text == "Awful.<br /><br />Truly AWFUL!"  # the file as it is
    assert LABELS == ("neg", "pos")


def test_archive_and_directory_give_identical_reviews(acl_dir, acl_tar, tmp_path):
    assert read_imdb(acl_tar) == read_imdb(acl_dir)
    # the original layout (aclImdb_v1.tar.gz, gzip, with train/unsup) and a parent directory work too
    gz = write_tar(tmp_path / "aclImdb_v1.tar.gz", {**tar_of(), "aclImdb/train/unsup/0_0.txt": b"x"}, "w:gz")
    assert read_imdb(gz) == read_imdb(acl_dir) == read_imdb(acl_dir.parent)


def test_directory_holding_one_archive_is_accepted(acl_tar):
    assert find_imdb(acl_tar.parent) == acl_tar


def test_limit_reads_the_first_reviews_of_each_group_in_name_order(acl_dir, acl_tar):
    for source in (acl_dir, acl_tar):
        data = read_imdb(source, limit=2)
        # names sort as strings: "1_4" < "12_2" < "3_1", "0_10" < "2_9" < "5_7"
        assert [(r.label, r.id) for r in data["train"]] == [(0, 1), (0, 12), (1, 0), (1, 2)]
        assert len(data["test"]) == 4


def test_real_archive_slice_is_imdb_shaped(real_imdb):
    data = read_imdb(real_imdb, limit=40)
    for split in ("train", "test"):
        reviews = data[split]
        assert len(reviews) == 80 and sum(r.label for r in reviews) == 40
        assert all(r.rating <= 4 for r in reviews if r.label == 0)
        assert all(r.rating >= 7 for r in reviews if r.label == 1)
        assert all(len(tokenize(r.text)) > 5 for r in reviews)
    assert any("<br />" in r.text for r in data["train"])  # the raw HTML breaks are kept until tokenize


def test_real_slice_directory_matches_the_archive(real_imdb, imdb_slice):
    assert read_imdb(imdb_slice, limit=25) == read_imdb(real_imdb, limit=25)


def test_missing_path_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match=r"IMDb data not found: .*nope does not exist \(expected aclImdb_labeled"):
        read_imdb(tmp_path / "nope")


def test_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("just text\n")
    with pytest.raises(DataError, match=r"reviews.txt is not a readable tar archive .* expected the IMDb archive"):
        read_imdb(path)


def test_archive_that_is_not_imdb_shaped(tmp_path):
    path = write_tar(tmp_path / "other.tar.xz", {"data/a.txt": b"hello", "data/b.csv": b"1,2"})
    with pytest.raises(DataError, match=r"other.tar.xz is not IMDb-shaped: no reviews under train/neg, train/pos, "
                                        r"test/neg, test/pos .* expected files named aclImdb/\{train,test\}"):
        read_imdb(path)


def test_archive_missing_one_group(tmp_path):
    texts = {k: v for k, v in TEXTS.items() if k != ("test", "pos")}
    path = write_tar(tmp_path / "half.tar.xz", tar_of(texts))
    with pytest.raises(DataError, match=r"not IMDb-shaped: no reviews under test/pos \(train/neg: 3, train/pos: 3, "
                                        r"test/neg: 2, test/pos: 0\)"):
        read_imdb(path)


def test_truncated_archive(acl_tar, tmp_path):
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(acl_tar.read_bytes()[: acl_tar.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut.tar.xz is (truncated or corrupted|not a readable tar archive)"):
        read_imdb(cut)


def test_directory_that_is_not_imdb(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"is not IMDb data: expected a directory with train/\{neg,pos\}"):
        read_imdb(tmp_path)


def test_non_utf8_review(tmp_path):
    members = tar_of()
    members["aclImdb/train/pos/0_10.txt"] = b"caf\xe9"
    path = write_tar(tmp_path / "latin1.tar", members, "w")
    with pytest.raises(DataError, match=r"latin1.tar:aclImdb/train/pos/0_10.txt is not UTF-8 text"):
        read_imdb(path)


# ----------------------------------------------------------------------------- text to ids


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("Great film!<br /><br />10/10", ["great", "film", "!", "10", "/", "10"]),
        ("I DON'T like the director's cut...", ["i", "don't", "like", "the", "director's", "cut", ".", ".", "."]),
        ("line<br/>break<BR>and (parens)", ["line", "break", "and", "(", "parens", ")"]),
        ("Amélie, naïve—café", ["amélie", ",", "naïve", "—", "café"]),
        ("  \n<br />  ", []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_build_vocab_order_cap_and_specials():
    vocab = build_vocab([["b", "a", "c", "a"], ["c", "a", "d", PAD_TOKEN, UNK_TOKEN]])
    assert vocab.itos == [PAD_TOKEN, UNK_TOKEN, "a", "c", "b", "d"]  # count desc, then alphabetical; specials once
    assert build_vocab([["b", "a", "c", "a"], ["c", "a", "d"]], max_vocab=4).itos == [PAD_TOKEN, UNK_TOKEN, "a", "c"]
    assert build_vocab([["b", "a", "c", "a"], ["c", "a", "d"]], min_freq=2).itos == [PAD_TOKEN, UNK_TOKEN, "a", "c"]
    with pytest.raises(ValueError, match="max_vocab must be >= 3"):
        build_vocab([["a"]], max_vocab=2)


def test_encode_maps_unknown_words_and_truncates():
    vocab = build_vocab([["good", "movie"]])
    assert encode(["good", "bad", "movie"], vocab).tolist() == [vocab.stoi["good"], 1, vocab.stoi["movie"]]
    assert encode(["good", "bad", "movie"], vocab, max_len=2).tolist() == [vocab.stoi["good"], 1]
    assert encode(["good"], vocab).dtype == torch.long


def test_load_imdb_builds_the_vocabulary_from_training_reviews_only(acl_dir):
    data = load_imdb(acl_dir, val_size=2)
    assert len(data.train) == 4 and len(data.val) == 2 and len(data.test) == 4
    assert "zebra" not in data.vocab and "wonderful" not in data.vocab  # test-only words
    val_words = {t for r in split_validation(read_imdb(acl_dir)["train"], 2)[1] for t in tokenize(r.text)}
    train_words = {t for r in split_validation(read_imdb(acl_dir)["train"], 2)[0] for t in tokenize(r.text)}
    assert set(data.vocab.itos[2:]) == train_words and (val_words - train_words).isdisjoint(data.vocab.itos)
    assert data.test.labels.tolist() == [0, 0, 1, 1]
    zebra_review = [i for i, r in enumerate(read_imdb(acl_dir)["test"]) if "zebra" in r.text]
    assert all(1 in data.test.ids[i].tolist() for i in zebra_review)  # <unk>
    assert load_imdb(acl_dir, val_size=2, max_len=1).train.lengths.max() == 1


# ----------------------------------------------------------------------------- validation split


def _reviews(n: int) -> list[Review]:
    return [Review(f"text {i}", i % 2, "train", i, 1 if i % 2 == 0 else 10) for i in range(n)]


def test_split_validation_is_a_fixed_partition():
    reviews = _reviews(100)
    torch.manual_seed(123)  # the global seed must not matter
    train, val = split_validation(reviews, 20)
    torch.manual_seed(456)
    train2, val2 = split_validation(reviews, 20)
    assert (train, val) == (train2, val2)
    assert len(val) == 20 and len(train) == 80 and sorted(train + val, key=lambda r: r.id) == reviews
    assert [r.id for r in val] == sorted(r.id for r in val)  # input order kept
    assert split_validation(reviews, 20, seed=1)[1] != val
    with pytest.raises(DataError, match=r"validation size must be in \[0, 100\) for 100 training reviews, got 100"):
        split_validation(reviews, 100)


# ----------------------------------------------------------------------------- batches


def test_encoded_split_batches_resume_and_count():
    g = torch.Generator().manual_seed(0)
    split = EncodedSplit([torch.randint(2, 50, (int(n),), generator=g) for n in torch.randint(1, 40, (130,), generator=g)],
                         torch.randint(0, 2, (130,), generator=g))
    full = list(split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert len(full) == split.num_batches(8) == 17
    tail = list(split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3), start=5))
    assert len(tail) == 12 and all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(full[5:], tail))
    assert sum(len(labels) for _, _, labels in full) == 130
    for ids, lengths, labels in full:
        assert ids.shape == (int(lengths.max()), len(labels))
        assert all((ids[int(n):, j] == 0).all() for j, n in enumerate(lengths))
