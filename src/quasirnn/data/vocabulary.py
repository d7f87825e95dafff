"""Vocabularies: words ↔ ids (:class:`Vocabulary`) and characters ↔ ids (:class:`CharVocab`).

A :class:`Vocabulary` is what the word-level corpora build: the language-modeling corpus
(:mod:`quasirnn.data.lm_corpus`, ids in order of first appearance) and IMDb
(:func:`quasirnn.data.imdb.build_vocab`, ``<pad>`` and ``<unk>`` first, then by count).
A :class:`CharVocab` is the character vocabulary of translation (:mod:`quasirnn.data.bitext`),
with four special symbols, ``<pad>`` = :data:`PAD_ID` = 0, ``<bos>`` = :data:`BOS_ID` = 1,
``<eos>`` = :data:`EOS_ID` = 2, ``<unk>`` = :data:`UNK_ID` = 3; any character it does not contain
maps to ``<unk>``.

Names: a special symbol's string is ``*_TOKEN`` (``EOS_TOKEN = "<eos>"``, the same in every corpus),
its id in a :class:`CharVocab` is ``*_ID``. A word :class:`Vocabulary` gives ids by its own order
(``vocab.stoi[UNK_TOKEN]``). Checkpoints store a vocabulary as its plain list of entries (``itos`` or
``chars``), never the object.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence, Union

from torch import Tensor

__all__ = ["PAD_TOKEN", "BOS_TOKEN", "EOS_TOKEN", "UNK_TOKEN", "SPECIAL_TOKENS", "PAD_ID", "BOS_ID", "EOS_ID",
           "UNK_ID", "Vocabulary", "CharVocab"]

#: The special symbols' strings: padding, begin and end of a sentence, unknown word or character.
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<bos>", "<eos>", "<unk>"
#: :class:`CharVocab`'s special symbols, in id order.
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
#: Ids of :class:`CharVocab`'s special symbols (their places in :data:`SPECIAL_TOKENS`).
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


class Vocabulary:
    """A word ↔ id mapping; ids are assigned in order of first appearance.

    Attributes:
        itos: list of words; ``itos[i]`` is the word of id ``i``.
        stoi: dict word → id.

    Example::

        >>> vocab = Vocabulary(["the", "cat", "the", "sat"])
        >>> vocab.itos, vocab.stoi["sat"], len(vocab)
        (['the', 'cat', 'sat'], 2, 3)
        >>> vocab.decode([2, 0])
        ['sat', 'the']
    """

    def __init__(self, words: Sequence[str] = ()) -> None:
        """Builds a vocabulary holding ``words`` (in order; duplicates are ignored)."""
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        """Adds ``word`` if new and returns its id (int)."""
        idx = self.stoi.get(word)
        if idx is None:
            idx = len(self.itos)
            self.stoi[word] = idx
            self.itos.append(word)
        return idx

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: object) -> bool:
        return word in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    @classmethod
    def from_stoi(cls, stoi: dict[str, int]) -> "Vocabulary":
        """The vocabulary of a word → id dict whose ids are 0 … V−1 in insertion order (kept, not copied)."""
        vocab = cls()
        vocab.stoi, vocab.itos = stoi, list(stoi)
        return vocab

    def decode(self, ids: Union[Tensor, Sequence[int]]) -> list[str]:
        """Maps ids (any shape, flattened) back to words."""
        if isinstance(ids, Tensor):
            ids = ids.flatten().tolist()
        return [self.itos[i] for i in ids]



class CharVocab:
    """Characters ↔ ids, with ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then characters.

    Args:
        chars: the characters of the vocabulary (after the four specials), in id order; each a
            one-character string, no duplicates.

    Raises:
        ValueError: an entry is not a single character, or appears twice.

    Example::

        >>> vocab = CharVocab.build(["abba", "cab"])
        >>> vocab.itos
        ['<pad>', '<bos>', '<eos>', '<unk>', 'a', 'b', 'c']
        >>> vocab.encode("caz", eos=True)  # z is unknown: <unk> = 3
        [6, 4, 3, 2]
        >>> vocab.decode([6, 4, 2, 5])  # stops at <eos>
        'ca'
    """

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars = chars
        self.itos = list(SPECIAL_TOKENS) + chars
        self.stoi = {ch: i + len(SPECIAL_TOKENS) for i, ch in enumerate(chars)}

    @classmethod
    def build(cls, lines: Iterable[str], min_count: int = 1) -> "CharVocab":
        """The characters seen at least ``min_count`` times in ``lines``, most frequent first (ties by code point)."""
        counts = Counter()
        for line in lines:
            counts.update(line)
        chars = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        return cls(chars)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Ids of the characters of ``text`` (unknown ones → ``<unk>``), framed by ``<bos>``/``<eos>`` when asked."""
        ids = [self.stoi.get(ch, UNK_ID) for ch in text]
        return ([BOS_ID] if bos else []) + ids + ([EOS_ID] if eos else [])

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: stops at the first ``<eos>``, skips ``<pad>``/``<bos>``, writes ``<unk>`` as U+FFFD."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            out.append(self.itos[i] if i >= len(SPECIAL_TOKENS) and i < len(self.itos) else "\ufffd")
        return "".join(out)
