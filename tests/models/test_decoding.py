"""Batched greedy decoding and beam search (quasirnn.models.decoding)."""

from __future__ import annotations

import pytest
import torch

from quasirnn.data.vocabulary import BOS_ID, EOS_ID, PAD_ID
from quasirnn.models.decoding import beam_search, greedy_decode
from quasirnn.models.translation import LSTMTranslator, QRNNTranslator

SV, TV = 23, 19
#: The special ids of the target vocabulary, as the translation experiment passes them.
IDS = {"bos_id": BOS_ID, "eos_id": EOS_ID, "pad_id": PAD_ID}


def make(cell: str, seed: int, eos_bias: float = 2.0):
    torch.manual_seed(seed)
    cls = QRNNTranslator if cell == "qrnn" else LSTMTranslator
    kwargs = {"encoder_window": [3, 2], "decoder_window": [2, 2]} if cell == "qrnn" else {}
    model = cls(SV, TV, emb_size=10, hidden_size=12, num_layers=2, **kwargs).double().eval()
    with torch.no_grad():  # make <eos> likely enough that some hypotheses end before max_len
        model.output.weight *= 4.0  # sharper, more varied next-character distributions
        model.output.bias[EOS_ID] += eos_bias
    return model


def batch(seed: int, S: int = 9, B: int = 6):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    src = torch.randint(4, SV, (S, B), generator=g).masked_fill(torch.arange(S)[:, None] >= lengths[None, :], PAD_ID)
    return src, lengths


@torch.no_grad()
def sequence_logprob(model, src, lengths, ids: list[int], finished: bool) -> float:
    """log p(ids [+ <eos>] | src) of one sentence, by teacher forcing."""
    target = ids + ([EOS_ID] if finished else [])
    tgt_in = torch.tensor([BOS_ID] + target[:-1])[:, None]
    logp = torch.log_softmax(model(src, lengths, tgt_in)[:, 0], -1)
    return logp[torch.arange(len(target)), torch.tensor(target)].sum().item()


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_is_greedy(cell, seed):
    model = make(cell, seed)
    src, lengths = batch(seed)
    greedy = greedy_decode(model, src, lengths, max_len=15, **IDS)
    assert greedy == beam_search(model, src, lengths, max_len=15, beam=1, **IDS)
    assert any(len(g) < 15 for g in greedy) and all(len(g) <= 15 for g in greedy)


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_greedy_picks_the_argmax_given_its_own_prefix(cell):
    model = make(cell, 3)
    src, lengths = batch(3)
    for b, ids in enumerate(greedy_decode(model, src, lengths, max_len=12, **IDS)):
        n = int(lengths[b])
        tgt_in = torch.tensor([BOS_ID] + ids)[:, None]
        best = model(src[:n, b : b + 1], lengths[b : b + 1], tgt_in)[:, 0].argmax(-1).tolist()
        expected = ids + [EOS_ID] if len(ids) < 12 else ids
        assert best[: len(expected)] == expected


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_wider_beams_find_hypotheses_at_least_as_likely_as_greedy(cell):
    """With no length normalisation, beam K returns the best of K finished hypotheses; on these
    small problems it is never worse than greedy and better for some sentence."""
    model = make(cell, 4, eos_bias=0.0)
    src, lengths = batch(4, B=8)
    greedy = greedy_decode(model, src, lengths, max_len=10, **IDS)
    wide = beam_search(model, src, lengths, max_len=10, beam=6, length_penalty=0.0, **IDS)
    gains = []
    for b in range(src.shape[1]):
        n = int(lengths[b])
        s, l = src[:n, b : b + 1], lengths[b : b + 1]
        pg = sequence_logprob(model, s, l, greedy[b], len(greedy[b]) < 10)
        pw = sequence_logprob(model, s, l, wide[b], len(wide[b]) < 10)
        gains.append(pw - pg)
    assert min(gains) > -1e-9 and max(gains) > 1e-6


def test_beam_search_stops_at_max_len_and_checks_its_arguments():
    model = make("qrnn", 5)
    with torch.no_grad():
        model.output.bias[EOS_ID] -= 100.0  # never ends
    src, lengths = batch(5)
    assert all(len(ids) == 7 for ids in beam_search(model, src, lengths, max_len=7, beam=3, **IDS))
    assert all(len(ids) == 7 for ids in greedy_decode(model, src, lengths, max_len=7, **IDS))
    with pytest.raises(ValueError, match="beam must be"):
        beam_search(model, src, lengths, max_len=7, beam=0, **IDS)
    with pytest.raises(ValueError, match="max_len must be"):
        greedy_decode(model, src, lengths, max_len=0, **IDS)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(model, src, lengths, max_len=7, length_penalty=-1.0, **IDS)
    with pytest.raises(ValueError, match="eos_id must be an integer >= 0, got -1"):
        greedy_decode(model, src, lengths, max_len=7, bos_id=BOS_ID, eos_id=-1)


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_decoding_reads_the_special_ids_it_is_given(cell):
    """The models know no vocabulary: ``<bos>`` and ``<eos>`` are the caller's ids."""
    model = make(cell, 6)
    src, lengths = batch(6)
    with torch.no_grad():
        model.output.bias[7] += 100.0  # id 7 always wins
    for decode in (greedy_decode, lambda *a, **k: beam_search(*a, beam=3, **k)):
        assert decode(model, src, lengths, max_len=5, **IDS) == [[7] * 5] * src.shape[1]
        assert decode(model, src, lengths, max_len=5, bos_id=BOS_ID, eos_id=7) == [[]] * src.shape[1]
    # the first step reads bos_id: another one gives other logits
    first = lambda bos: model.decode(torch.full((1, src.shape[1]), bos), model.encode(src, lengths))[0]
    assert not torch.allclose(first(BOS_ID), first(5))
