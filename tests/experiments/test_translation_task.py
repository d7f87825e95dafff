"""The translation task's pieces that a distributed run relies on, checked in one process: each
rank's share of a global batch and its loss weight, and evaluation split between the ranks."""

from __future__ import annotations

import pytest
import torch

from quasirnn.data.bitext import ParallelSplit
from quasirnn.data.vocabulary import BOS_ID, EOS_ID, CharVocab
from quasirnn.models.decoding import greedy_decode
from quasirnn.experiments.translation import TranslateConfig, TranslationData, TranslationTask, build_translator
from quasirnn.experiments.translation import translate_lines
from quasirnn.training.distributed import Distributed

CONFIG = TranslateConfig().replace(cell="qrnn", emb_size=12, hidden_size=16, num_layers=2, encoder_window=3,
                                   decoder_window=2, dropout=0.0, zoneout=0.0, batch_size=7, eval_batch_size=4, seed=5,
                                   label_smoothing=0.1, max_len=40, final_beam=2)
SRC = ["Ein Hund läuft.", "Zwei Männer sitzen auf einer Bank.", "Eine Frau.", "Kinder spielen im Park am See.",
       "Ein Mann fährt Rad.", "Das Auto ist rot.", "Ein Vogel singt laut.", "Leute warten.", "Eine Katze schläft.",
       "Ein Junge springt ins Wasser."]
TGT = ["A dog runs.", "Two men sit on a bench.", "A woman.", "Children play in the park by the lake.",
       "A man rides a bike.", "The car is red.", "A bird sings loudly.", "People wait.", "A cat sleeps.",
       "A boy jumps into the water."]


class RecordingRank(Distributed):
    """Rank ``rank`` of a 2-process run without a process group: ``gather`` returns the parts given
    in ``others`` (by rank) around this rank's own, and records what this rank contributed."""

    def __init__(self, rank: int, others: dict[int, object]) -> None:
        super().__init__(rank=rank, world_size=2)
        self.others, self.sent = others, None

    def gather(self, obj):
        self.sent = obj
        return [obj if r == self.rank else self.others.get(r, []) for r in range(self.world_size)]


def model_and_vocabs():
    src_vocab, tgt_vocab = CharVocab.build(SRC), CharVocab.build(TGT)
    torch.manual_seed(0)
    return build_translator(CONFIG.model, len(src_vocab), len(tgt_vocab)).double(), src_vocab, tgt_vocab


def test_evaluation_split_between_ranks_gives_every_translation_of_one_process():
    model, src_vocab, tgt_vocab = model_and_vocabs()
    lines = SRC + ["   "]  # a blank line stays empty
    cpu = torch.device("cpu")
    for beam in (1, 2):
        one = translate_lines(model, lines, src_vocab, tgt_vocab, cpu, 30, beam=beam, batch_size=3)
        rank1 = RecordingRank(1, {})
        translate_lines(model, lines, src_vocab, tgt_vocab, cpu, 30, beam=beam, batch_size=3, dist=rank1)
        rank0 = RecordingRank(0, {1: rank1.sent})
        both = translate_lines(model, lines, src_vocab, tgt_vocab, cpu, 30, beam=beam, batch_size=3, dist=rank0)
        assert both == one and one[-1] == "" and len(set(one)) > 2
        # 10 sentences in 4 sorted batches of 3, 3, 3, 1: rank 0 decodes batches 0 and 2, rank 1 batches 1 and 3
        assert len(rank0.sent) == 6 and len(rank1.sent) == 4
        assert sorted(i for i, _ in rank0.sent + rank1.sent) == list(range(len(SRC)))
    src = torch.tensor([src_vocab.encode(SRC[0])]).T  # (S, 1)
    greedy = translate_lines(model, SRC[:1], src_vocab, tgt_vocab, cpu, 30)
    assert greedy[0] == tgt_vocab.decode(greedy_decode(model.eval(), src, torch.tensor([src.shape[0]]), 30,
                                                                   bos_id=BOS_ID, eos_id=EOS_ID)[0])


def test_the_ranks_shares_of_a_global_batch_add_up_to_its_loss():
    """Rank r takes pairs r, r+2, ... of each batch and weights its mean loss by its share of the
    batch's target characters: the weighted losses average (as DDP averages gradients) to the
    loss of the whole batch; a rank without a pair in a batch runs one with weight 0."""
    model, src_vocab, tgt_vocab = model_and_vocabs()
    train = ParallelSplit.encode(SRC, TGT, src_vocab, tgt_vocab)
    data = TranslationData(train, SRC[:2], TGT[:2], SRC[:2], TGT[:2], src_vocab, tgt_vocab)
    single = TranslationTask(model, data, CONFIG, Distributed())
    ranks = [TranslationTask(model, data, CONFIG, Distributed(rank=r, world_size=2)) for r in (0, 1)]
    whole = list(single.train_batches(0, 0))
    shares = [list(task.train_batches(0, 0)) for task in ranks]
    assert sorted(batch[1].numel() for _, batch in whole) == [3, 7]  # 10 pairs in batches of 7
    for number, (position, batch) in enumerate(whole):
        expected = single.loss(model, batch)
        outs = [task.loss(model, share[number][1]) for task, share in zip(ranks, shares)]
        assert [share[number][0] for share in shares] == [position, position] == [number + 1] * 2
        assert [o.stats["examples"] for o in outs] == [(batch[1].numel() + 1) // 2, batch[1].numel() // 2]
        torch.testing.assert_close(sum(o.loss for o in outs) / 2, expected.loss)
        assert sum(o.count for o in outs) == expected.count == int(batch[3].sum())
        assert sum(o.stats["tokens"] for o in outs) == expected.stats["tokens"] == int(batch[1].sum() + batch[3].sum())
        mean = sum(float(o.mean_loss) * o.count for o in outs) / expected.count  # the trainer's logged loss
        assert mean == pytest.approx(float(expected.mean_loss), rel=1e-12)
    lone = TranslationTask(model, data, CONFIG.replace(batch_size=9), Distributed(rank=1, world_size=2))
    (stand_in,) = [batch for _, batch in lone.train_batches(0, 0) if not batch[-1]]  # the batch of 1 pair
    out = lone.loss(model, stand_in)
    assert out.count == 0 and out.stats == {"examples": 0, "tokens": 0} and float(out.loss.detach()) == 0.0
    assert out.loss.requires_grad  # it still takes part in the backward pass (and DDP's gradient averaging)
