"""Word and character vocabularies (quasirnn.data.vocabulary)."""

from __future__ import annotations

import pytest
import torch

from quasirnn.data.vocabulary import BOS_ID, EOS_ID, UNK_ID, CharVocab, Vocabulary


def test_word_vocabulary_keeps_first_appearance_order_and_decodes_ids():
    g = torch.Generator().manual_seed(0)
    words = [f"w{int(i)}" for i in torch.randint(0, 40, (200,), generator=g)]
    vocab = Vocabulary(words)
    first = list(dict.fromkeys(words))
    assert vocab.itos == first and len(vocab) == len(first)
    assert all(vocab.stoi[w] == i for i, w in enumerate(first))
    assert vocab.add(first[3]) == 3 and len(vocab) == len(first)  # an old word keeps its id
    assert vocab.add("new") == len(first) and "new" in vocab
    ids = torch.randint(0, len(vocab), (3, 4), generator=g)
    assert vocab.decode(ids) == [vocab.itos[i] for i in ids.flatten().tolist()]
    assert Vocabulary.from_stoi(dict(vocab.stoi)) == vocab


def test_vocabulary_maps_unknown_characters_to_unk_and_round_trips_known_text():
    vocab = CharVocab.build(["abc ab", "cab!"])
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocab.itos[4] in "ab"  # most frequent first
    ids = vocab.encode("ab zß", bos=True, eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert ids[4] == UNK_ID and ids[5] == UNK_ID  # z and ß were never seen
    assert vocab.decode(vocab.encode("cab ab!")) == "cab ab!"
    assert vocab.decode(vocab.encode("a") + [EOS_ID] + vocab.encode("b")) == "a"  # stops at <eos>
    assert len(CharVocab(vocab.chars)) == len(vocab)
    with pytest.raises(ValueError, match="single characters"):
        CharVocab(["ab"])
