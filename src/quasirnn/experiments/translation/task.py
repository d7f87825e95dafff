"""Character-level translation as a training :class:`~quasirnn.training.task.Task` (``quasirnn translate train``).

Each epoch's batches are length-bucketed sentence pairs (:func:`quasirnn.data.batching.length_batches`
over source + target length) in an order that depends only on (seed, epoch), so a resumed run
can skip to its position. ``batch_size`` is the **global** batch: in a distributed run every
rank draws the same order and takes its share of each batch
(:meth:`quasirnn.training.Distributed.batch_share`). The loss is the label-smoothed cross-entropy per real target character
(``<eos>`` included, padding excluded) of the whole global batch: each rank scales its own mean
by its share of the batch's target characters.

After every epoch the task translates the validation sentences greedily and measures BLEU
(the value the learning-rate decay watches, ``mode = "max"``), keeping the weights of the best
one. The final test translates validation and test with beam search using those best weights.
Both split the sorted evaluation batches between the ranks (batch ``i`` on rank ``i mod N``, so
every sentence is decoded in the batch one process would use) and gather the translations.

BLEU is ``sacrebleu.corpus_bleu`` on the raw, cased output against the raw references: a
character model writes detokenized text, so this is the BLEU people report. ``chars_per_s``
is training throughput: source plus target characters (``<eos>`` included) of the training
batches per second of training time (forward, backward and optimizer step; evaluation excluded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from quasirnn.data.batching import length_batches, pad_batch
from quasirnn.data.bitext import ParallelSplit
from quasirnn.data.vocabulary import BOS_ID, EOS_ID, PAD_ID, CharVocab
from quasirnn.experiments.translation.config import KIND, TranslateConfig
from quasirnn.models.decoding import beam_search, greedy_decode
from quasirnn.training.distributed import Distributed
from quasirnn.training.progress import Progress
from quasirnn.training.runlog import finite
from quasirnn.training.task import BestWeights, StepOutput, Task, Validation

__all__ = ["TranslationData", "TranslationTask", "bleu", "epoch_batches", "translate_lines", "translation_loss"]


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu, default 13a tokenization, cased) of detokenized hypotheses; 0–100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)


def epoch_batches(split: ParallelSplit, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The training batches (lists of pair indices) of ``epoch`` (0-based): length-bucketed by
    source + target length, shuffled by a generator that depends only on (seed, epoch)."""
    lengths = [len(s) + len(t) for s, t in zip(split.src, split.tgt)]
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return [b.tolist() for b in length_batches(lengths, batch_size, shuffle=True, generator=generator)]


def translation_loss(model: nn.Module, src: torch.Tensor, src_lengths: torch.Tensor, tgt: torch.Tensor,
                     label_smoothing: float = 0.0) -> torch.Tensor:
    """Teacher-forced loss: the decoder reads ``<bos>`` + tgt[:-1] and predicts tgt.

    Args:
        model: a translator (or its DistributedDataParallel wrapper).
        src: LongTensor (S, B) right-padded; src_lengths LongTensor (B,).
        tgt: LongTensor (T, B) right-padded with ``<pad>``, each column ending in ``<eos>``.
        label_smoothing: in [0, 1).

    Returns:
        Scalar float tensor attached to the graph: the mean (label-smoothed) cross-entropy over
        the real target characters, in nats.
    """
    tgt_in = torch.cat([torch.full_like(tgt[:1], BOS_ID), tgt[:-1]], 0)
    logits = model(src, src_lengths, tgt_in)  # (T, B, V)
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID, label_smoothing=label_smoothing)


def translate_lines(model, lines: list[str], src_vocab: CharVocab, tgt_vocab: CharVocab, device: torch.device,
                    max_len: int, beam: int = 1, batch_size: int = 100, length_penalty: float = 1.0,
                    dist: Optional[Distributed] = None) -> list[str]:
    """Translates raw sentences (in order) with greedy decoding (``beam`` 1) or beam search.

    Unknown characters become ``<unk>``; an empty (or whitespace-only) line translates to "".
    Each output is at most ``min(max_len, 2 · source length + 10)`` characters. The sentences
    are decoded in batches of ``batch_size`` sorted by length; with ``dist`` (a distributed run)
    rank r decodes batches r, r + N, ... and every rank returns all translations (a collective
    operation: every rank must call it). The model (unwrapped: it needs ``encode``/``decode``)
    is put in eval mode and back.

    Returns:
        One string per line of ``lines``.
    """
    was_training = model.training
    model.eval()
    out = [""] * len(lines)
    todo = [i for i, line in enumerate(lines) if line.strip()]
    done: list[tuple[int, str]] = []
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    try:
        for number, idx in enumerate(length_batches([len(lines[i]) for i in todo], batch_size)):
            if number % world != rank:
                continue
            idx = [todo[i] for i in idx.tolist()]
            src, src_len = pad_batch([src_vocab.encode(lines[i]) for i in idx], PAD_ID, device=device)
            cap = min(max_len, 2 * int(src_len.max()) + 10)
            special = {"bos_id": BOS_ID, "eos_id": EOS_ID, "pad_id": PAD_ID}
            if beam == 1:
                ids = greedy_decode(model, src, src_len, cap, **special)
            else:
                ids = beam_search(model, src, src_len, cap, beam=beam, length_penalty=length_penalty, **special)
            done.extend((i, tgt_vocab.decode(row)) for i, row in zip(idx, ids))
    finally:
        model.train(was_training)
    if dist is not None and dist.enabled:
        done = [pair for part in dist.gather(done) for pair in part]
    for i, text in done:
        out[i] = text
    return out


@dataclass
class TranslationData:
    """The sentence pairs of a translation run.

    Attributes:
        train: the encoded training pairs (those within ``max_len``).
        val_src, val_tgt: the raw validation sentences (references for BLEU).
        test_src, test_tgt: the raw test sentences.
        src_vocab, tgt_vocab: the character vocabularies of the two languages.
        test_name: the test split's name in log lines (e.g. ``test_2016_flickr``).
    """

    train: ParallelSplit
    val_src: list[str]
    val_tgt: list[str]
    test_src: list[str]
    test_tgt: list[str]
    src_vocab: CharVocab
    tgt_vocab: CharVocab
    test_name: str = "test"


class TranslationTask(Task):
    """Trains a translator on character-encoded sentence pairs (see the module docstring).

    Args:
        model: the translator (:func:`quasirnn.experiments.translation.build_translator`), on ``dist.device``.
        data: the training, validation and test pairs with their vocabularies.
        config: the run's :class:`~quasirnn.experiments.translation.TranslateConfig` (batch sizes,
            seed, label smoothing, longest output, final beam).
        dist: this rank's place in the run.
    """

    kind = KIND
    metric = "bleu"
    mode = "max"

    def __init__(self, model: nn.Module, data: TranslationData, config: TranslateConfig, dist: Distributed) -> None:
        self.model, self.data, self.config, self.dist = model, data, config, dist
        self.batch_size, self.eval_batch_size, self.seed = config.batch_size, config.eval_batch_size, config.optim.seed
        self.label_smoothing, self.max_len, self.beam = config.label_smoothing, config.max_len, config.final_beam
        self.best = BestWeights()  # greedy validation BLEU, over every validation: selects the tested weights
        self.val_bleu = math.nan

    # ------------------------------------------------------------------ training

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.batch_size)

    def train_batches(self, epoch: int, position: int) -> Iterator[tuple[int, Any]]:
        split, device = self.data.train, self.dist.device
        order = epoch_batches(split, self.batch_size, self.seed, epoch)
        for number, index in enumerate(order[position:], start=position + 1):
            mine, counts = self.dist.batch_share(index)
            src, src_len = pad_batch([split.src[i] for i in mine], PAD_ID, device=device)
            tgt, tgt_len = pad_batch([split.tgt[i] for i in mine], PAD_ID, device=device)
            global_chars = sum(len(split.tgt[i]) for i in index)
            yield number, (src, src_len, tgt, tgt_len, global_chars, counts)

    def loss(self, model: nn.Module, batch: Any) -> StepOutput:
        src, src_len, tgt, tgt_len, global_chars, counts = batch
        loss = translation_loss(model, src, src_len, tgt, self.label_smoothing)
        chars = int(tgt_len.sum()) if counts else 0  # the target characters this rank's mean is over
        scale = chars * self.dist.world_size / global_chars  # 1 in one process
        stats = {"examples": src_len.numel() if counts else 0,
                 "tokens": int(src_len.sum()) + chars if counts else 0}
        return StepOutput(loss * scale if scale != 1.0 else loss, loss.detach(), chars, stats)

    def step_values(self, mean_loss: float, stats: dict[str, float]) -> dict[str, Any]:
        return {}

    def window_text(self, mean_loss: float, stats: dict[str, float], seconds: float) -> tuple[dict[str, str], str]:
        rate = stats.get("tokens", 0) / seconds if seconds > 0 else 0.0
        return {"loss": f"{mean_loss:.3f}", "cps": f"{rate:,.0f}"}, f"loss {mean_loss:.3f} | {rate:,.0f} chars/s"

    def rate_text(self, progress: Progress) -> str:
        return f"{progress.per_second(progress.train_tokens) or 0.0:,.0f} chars/s"

    # ------------------------------------------------------------------ evaluation

    def _bleu(self, src: list[str], tgt: list[str], beam: int) -> float:
        """BLEU of the current weights' translations of ``src`` (all ranks take part)."""
        data = self.data
        hyps = translate_lines(self.model, src, data.src_vocab, data.tgt_vocab, self.dist.device, self.max_len, beam,
                               self.eval_batch_size, dist=self.dist)
        return bleu(hyps, tgt) if src else math.nan

    def validate(self, step: int) -> Validation:
        """Greedy validation BLEU of the current weights; keeps them when they are the best so far."""
        self.val_bleu = self._bleu(self.data.val_src, self.data.val_tgt, 1)
        if self.val_bleu > self.best.value or (math.isnan(self.val_bleu) and self.best.step < 0):
            self.best.keep(self.model, self.val_bleu, step)
        return Validation(self.val_bleu, {"val_bleu": finite(self.val_bleu)}, {"bleu": self.val_bleu},
                          f"val BLEU {self.val_bleu:.2f} (best {self.best.value:.2f})")

    def test(self) -> dict[str, Any]:
        """BLEU of the best-validation weights with beam search (``final_beam``) on validation and
        test, and greedily on test when the beam is wider than 1; the last weights stay in the model."""
        data = self.data
        with self.best.applied(self.model):
            result = {"val_bleu": self._bleu(data.val_src, data.val_tgt, self.beam),
                      "test_bleu": self._bleu(data.test_src, data.test_tgt, self.beam)}
            if self.beam > 1:
                result["test_bleu_greedy"] = self._bleu(data.test_src, data.test_tgt, 1)
        return result

    def test_log(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"bleu": result["test_bleu"], **{k: v for k, v in result.items() if k != "test_bleu"}}

    # ------------------------------------------------------------------ checkpoint and metrics

    def state(self, progress: Progress) -> dict[str, Any]:
        return {"src_vocab": list(self.data.src_vocab.chars), "tgt_vocab": list(self.data.tgt_vocab.chars),
                "best_model": self.best.weights(self.model),
                "best": {"val_bleu": self.best.value, "step": self.best.step}}

    def load_state(self, checkpoint: dict[str, Any], progress: Progress) -> None:
        best = checkpoint["best"]
        self.best.load(best["val_bleu"], best["step"], checkpoint["best_model"])

    def metrics(self, progress: Progress, test: Optional[dict[str, Any]]) -> dict[str, Any]:
        data, best = self.data, finite(self.best.value) if self.best.step >= 0 else None
        final = {"val_bleu": best, "test_bleu": None} if test is None else {k: finite(v) for k, v in test.items()}
        return {
            **final,  # val_bleu: beam search after the final test, the best greedy one before
            "best_val_bleu_greedy": best,
            "last_val_bleu": finite(self.val_bleu),
            "best_step": self.best.step if self.best.step >= 0 else None,
            "final_beam": self.beam,
            "chars_per_s": progress.per_second(progress.train_tokens),
            "vocab_size": {"src": len(data.src_vocab), "tgt": len(data.tgt_vocab)},
            "pairs": {"train": len(data.train), "val": len(data.val_src), "test": len(data.test_src)},
            "train_pairs": progress.train_examples,
        }

    def done_text(self, progress: Progress, test: dict[str, Any]) -> str:
        return (f"val BLEU {test['val_bleu']:.2f} | {self.data.test_name} BLEU {test['test_bleu']:.2f} "
                f"(beam {self.beam}) | {self.rate_text(progress)}")
