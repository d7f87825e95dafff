"""Batched greedy and beam-search decoding for the translators of :mod:`quasirnn.models.translation`.

Both read one character per step through the model's incremental ``decode`` (one step each,
never a re-run of the prefix) and stop when every sentence has produced ``<eos>`` or after
``max_len`` characters. The special ids come from the caller (``bos_id``, ``eos_id``, ``pad_id``:
the target vocabulary's, e.g. :data:`quasirnn.data.vocabulary.BOS_ID`); the models know no vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quasirnn._checks import check_int

__all__ = ["greedy_decode", "beam_search"]


def _check(max_len: int, bos_id: int, eos_id: int, pad_id: int) -> None:
    check_int("max_len", max_len)
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
        check_int(name, value, minimum=0)


@torch.no_grad()
def greedy_decode(model, src: Tensor, src_lengths: Tensor, max_len: int, *, bos_id: int, eos_id: int,
                  pad_id: int = 0) -> list[list[int]]:
    """The most probable next character at every step, for a batch of source sentences.

    Args:
        model: a translator (``encode``/``decode``), used as it is (call ``model.eval()`` first
            for deterministic output).
        src: LongTensor (S, B), right-padded; src_lengths LongTensor (B,) in [1, S].
        max_len: the most characters generated per sentence, ``<eos>`` included.
        bos_id, eos_id, pad_id: the target vocabulary's ``<bos>`` (read first), ``<eos>`` (ends a
            sentence) and ``<pad>`` (written after the end) ids.

    Returns:
        B lists of target ids, each without ``<bos>`` and ending before ``<eos>`` (or ``<pad>``).

    Raises:
        ValueError: ``max_len`` < 1, a negative id, or invalid inputs (see the model's ``encode``).

    Example::

        >>> from quasirnn.models import QRNNTranslator
        >>> model = QRNNTranslator(30, 20, emb_size=8, hidden_size=16).eval()
        >>> src, lengths = torch.randint(3, 30, (6, 2)), torch.tensor([6, 3])
        >>> out = greedy_decode(model, src, lengths, max_len=5, bos_id=1, eos_id=2)
        >>> len(out), all(len(ids) <= 5 for ids in out)
        (2, True)
    """
    _check(max_len, bos_id, eos_id, pad_id)
    B = src.shape[1]
    state = model.encode(src, src_lengths)
    prev = torch.full((1, B), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    out = []
    for _ in range(max_len):
        logits, state = model.decode(prev, state)
        token = logits[0].argmax(-1)
        token = token.masked_fill(done, pad_id)
        out.append(token)
        done = done | (token == eos_id)
        if bool(done.all()):
            break
        prev = token[None]
    ids = torch.stack(out, 1).tolist()  # (B, steps)
    return [_strip(row, eos_id, pad_id) for row in ids]


def _strip(row: list[int], eos_id: int, pad_id: int) -> list[int]:
    """``row`` up to its first ``<eos>`` or ``<pad>``."""
    result = []
    for i in row:
        if i in (eos_id, pad_id):
            break
        result.append(i)
    return result


@torch.no_grad()
def beam_search(model, src: Tensor, src_lengths: Tensor, max_len: int, beam: int = 5,
                length_penalty: float = 1.0, *, bos_id: int, eos_id: int, pad_id: int = 0) -> list[list[int]]:
    """Batched beam search: the hypothesis of highest ``log p / length**length_penalty`` per sentence.

    Each sentence keeps ``beam`` hypotheses (B·beam rows of the model's state, reordered with
    ``model.reorder_state`` after every step; the encoder side is shared by a sentence's
    hypotheses and never copied after the first step). A hypothesis that has produced ``<eos>`` is
    finished: it keeps its score and only extends with padding. Lengths count the characters
    and the ``<eos>``; ``length_penalty`` 0 ranks by plain log-probability, 1 by
    log-probability per character.

    Args:
        model, src, src_lengths, max_len, bos_id, eos_id, pad_id: as :func:`greedy_decode`.
        beam: K ≥ 1 hypotheses per sentence (K = 1 is greedy decoding).
        length_penalty: α ≥ 0 of the length normalisation.

    Returns:
        B lists of target ids, without ``<bos>``/``<eos>``.

    Raises:
        ValueError: ``beam`` < 1, ``length_penalty`` < 0, ``max_len`` < 1, a negative id, invalid inputs.

    Example::

        >>> from quasirnn.models import LSTMTranslator
        >>> model = LSTMTranslator(30, 20, emb_size=8, hidden_size=16).eval()
        >>> out = beam_search(model, torch.randint(3, 30, (6, 2)), torch.tensor([6, 3]), max_len=5, beam=3,
        ...                   bos_id=1, eos_id=2)
        >>> len(out), all(len(ids) <= 5 for ids in out)
        (2, True)
    """
    _check(max_len, bos_id, eos_id, pad_id)
    check_int("beam", beam)
    if not length_penalty >= 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty!r}")
    device = src.device
    B, K = src.shape[1], beam
    state = model.encode(src, src_lengths)
    state = model.reorder_state(state, torch.arange(B, device=device).repeat_interleave(K))
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all K rows start identical: keep one alive
    lengths = torch.zeros(B, K, device=device)
    done = torch.zeros(B, K, dtype=torch.bool, device=device)
    tokens = torch.empty(B, K, 0, dtype=torch.long, device=device)
    prev = torch.full((1, B * K), bos_id, dtype=torch.long, device=device)
    for _ in range(max_len):
        logits, state = model.decode(prev, state)
        logp = torch.log_softmax(logits[0].float(), -1).view(B, K, -1)  # (B, K, V)
        V = logp.shape[-1]
        # a finished hypothesis extends only with <pad>, at no cost
        finished = torch.full_like(logp[0, 0], float("-inf"))
        finished[pad_id] = 0.0
        logp = torch.where(done[..., None], finished, logp)
        cand = (scores[..., None] + logp).view(B, K * V)
        scores, flat = cand.topk(K, dim=-1)  # (B, K)
        origin, token = flat // V, flat % V
        rows = (origin + torch.arange(B, device=device)[:, None] * K).view(-1)
        state = model.reorder_state(state, rows, memory=False)  # rows stay within their sentence
        done = done.gather(1, origin)
        lengths = lengths.gather(1, origin) + (~done).float()
        tokens = torch.cat([tokens.gather(1, origin[..., None].expand(-1, -1, tokens.shape[-1])), token[..., None]], -1)
        done = done | (token == eos_id)
        if bool(done.all()):
            break
        prev = token.view(1, B * K)
    ranked = scores / lengths.clamp(min=1.0) ** length_penalty
    ranked = ranked.masked_fill(torch.isinf(scores), float("-inf"))
    best = ranked.argmax(-1)  # (B,)
    chosen = tokens[torch.arange(B, device=device), best].tolist()
    return [_strip(row, eos_id, pad_id) for row in chosen]
