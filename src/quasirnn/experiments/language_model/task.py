"""Word-level language modelling as a training :class:`~quasirnn.training.task.Task` (``quasirnn lm train``).

The training stream is cut into B contiguous columns (:func:`quasirnn.data.batchify`, B =
``batch_size``, the **global** batch) and walked in BPTT windows, the hidden state carried from
one window to the next. In a distributed run rank r takes its contiguous share of the B columns,
so N ranks together train on exactly the windows one process would, and their averaged gradients
equal the one-process gradient (up to float rounding; dropout masks differ). Validation and test
split their columns the same way and sum the log-likelihoods over the ranks.

The training loss is the cross-entropy plus AWD-LSTM's activation regularisers
(:func:`activation_regularisation`, ``alpha`` and ``beta``); the logged loss and perplexity are the
cross-entropy. With ``keep_best`` the weights of the best validation are kept (the averaged ones
while the trainer averages) and tested, as awd-lstm-lm keeps and tests its best saved model.

Checkpoints hold the data position (the time step in the stream), the hidden state of all B
columns (gathered from the ranks, so a run can resume with another number of ranks), the
generator of the variable BPTT lengths, so a run resumed mid-epoch continues exactly, and with
``keep_best`` the best weights (``best_model``) and their validation (``best``).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

import torch

from quasirnn.data import Corpus, batchify, bptt_batches
from quasirnn.errors import ConfigError, DataError
from quasirnn.experiments.language_model.config import KIND, LMConfig
from quasirnn.experiments.language_model.evaluation import evaluate
from quasirnn.models import LanguageModel, detach_hidden
from quasirnn.training.distributed import Distributed
from quasirnn.training.progress import Progress
from quasirnn.training.runlog import finite
from quasirnn.training.task import BestWeights, StepOutput, Task, Validation

__all__ = ["LanguageModelTask", "activation_regularisation", "batchify_split", "lm_loss", "lm_training_loss",
           "perplexity"]


def perplexity(loss: float) -> float:
    """``exp(loss)`` for a mean loss in nats per token; inf when it overflows."""
    return math.exp(loss) if loss < 700 else math.inf


def lm_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, hidden: Any) -> tuple[torch.Tensor, Any]:
    """Mean next-word cross-entropy of one BPTT window, the state cut from the previous window's graph.

    Args:
        model: a :class:`LanguageModel` (or its DistributedDataParallel wrapper).
        inputs, targets: LongTensors (T, B); ``targets[t]`` is the word after ``inputs[t]``.
        hidden: the state the previous window returned, or None.

    Returns:
        (scalar loss tensor in nats per token, attached to the graph; the new hidden state).
    """
    return model(inputs, detach_hidden(hidden), targets)


def activation_regularisation(raw: torch.Tensor, dropped: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """AWD-LSTM's activation regularisers (Merity et al. 2017, §4.6; awd-lstm-lm ``main.py``) of one window.

    AR = ``alpha · mean(dropped²)`` over the last layer's outputs after its output dropout;
    TAR = ``beta · mean((raw[t+1] − raw[t])²)`` over its outputs before the dropout (a window of
    one step has no difference: TAR 0). Computed in float32.

    Args:
        raw, dropped: (T, B, E_out), :meth:`~quasirnn.models.LanguageModel.features`'s outputs.
        alpha, beta: the weights, ≥ 0 (0 leaves the term out).

    Returns:
        The scalar AR + TAR, attached to the graph (0 when both weights are 0).

    Example::

        >>> raw = torch.tensor([[[1.0]], [[3.0]]])  # T = 2, B = 1, E = 1
        >>> float(activation_regularisation(raw, 2 * raw, alpha=2.0, beta=1.0))  # 2·mean(4, 36) + 1·(3−1)²
        44.0
    """
    penalty = raw.new_zeros((), dtype=torch.float32)
    if alpha:
        penalty = penalty + alpha * dropped.float().pow(2).mean()
    if beta and raw.size(0) > 1:
        r = raw.float()
        penalty = penalty + beta * (r[1:] - r[:-1]).pow(2).mean()
    return penalty


def lm_training_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, hidden: Any,
                     alpha: float = 0.0, beta: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """The training loss of one BPTT window: :func:`lm_loss` plus :func:`activation_regularisation`.

    Args:
        model: a :class:`LanguageModel` (or its DistributedDataParallel wrapper: the features come
            through its one forward call).
        inputs, targets, hidden: as for :func:`lm_loss`.
        alpha, beta: AR and TAR weights.

    Returns:
        (the loss to backpropagate, the cross-entropy (both scalar tensors attached to the graph),
        the new hidden state).
    """
    if not alpha and not beta:
        loss, hidden = lm_loss(model, inputs, targets, hidden)
        return loss, loss, hidden
    loss, hidden, raw, dropped = model(inputs, detach_hidden(hidden), targets, return_features=True)
    return loss + activation_regularisation(raw, dropped, alpha, beta), loss, hidden


def batchify_split(ids: torch.Tensor, split: str, directory: Any, batch_size: int, device: torch.device) -> torch.Tensor:
    """:func:`~quasirnn.data.batchify` of the token ids (N,) of ``split`` (read from ``directory``), on ``device``.

    Raises:
        DataError: fewer than ``2 * batch_size`` tokens.
    """
    if ids.numel() < 2 * batch_size:
        raise DataError(f"the {split} split in {directory} has {ids.numel()} tokens, too few for batch size {batch_size}")
    return batchify(ids, batch_size).to(device)


def _cat(parts: list[Any], dim: int) -> Any:
    """The per-rank hidden states (nested tuples of tensors, batch at ``dim``) joined into one."""
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim)
    return tuple(_cat([p[i] for p in parts], dim) for i in range(len(first)))


def _narrow(state: Any, dim: int, columns: slice) -> Any:
    """This rank's columns of a joined hidden state (see :func:`_cat`)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.narrow(dim, columns.start, columns.stop - columns.start)
    return tuple(_narrow(s, dim, columns) for s in state)


class LanguageModelTask(Task):
    """Trains a :class:`LanguageModel` on a corpus (see the module docstring).

    Args:
        model: the language model, on ``dist.device``.
        corpus: the corpus; its ``train``, ``valid`` and ``test`` splits are used.
        config: ``batch_size``, ``eval_batch_size``, ``test_batch_size``, ``bptt``, ``variable_bptt``,
            ``alpha``, ``beta``, ``keep_best``, ``seed`` and ``precision`` (see :class:`LMConfig`).
        dist: this rank's place in the run.

    Raises:
        DataError: a split too short for its batch size.
        ConfigError: fewer batch columns than ranks.
    """

    kind = KIND
    metric = "ppl"
    mode = "min"

    def __init__(self, model: LanguageModel, corpus: Corpus, config: LMConfig, dist: Distributed) -> None:
        self.model, self.corpus, self.config, self.dist = model, corpus, config, dist
        self.bptt, self.variable, self.precision = config.bptt, config.variable_bptt, config.run.precision
        self.alpha, self.beta = config.alpha, config.beta
        batch_size = config.batch_size
        if batch_size < dist.world_size:
            raise ConfigError(f"--batch-size {batch_size} is smaller than the {dist.world_size} ranks: every rank "
                              f"needs at least one column of the batch")
        device = dist.device
        full = batchify_split(corpus.train, "train", corpus.directory, batch_size, device)
        self.steps_per_epoch_source = full.size(0)
        self.columns = dist.shard(batch_size)
        self.train = full[:, self.columns] if dist.enabled else full
        # a rank's mean loss counts for its share of the columns when the gradients are averaged
        self.loss_scale = self.train.size(1) * dist.world_size / batch_size
        self.valid, self.test_data = (
            self._eval_shard(batchify_split(corpus.split(s), s, corpus.directory, size, device))
            for s, size in (("valid", config.eval_batch_size),
                            ("test", config.test_batch_size or config.eval_batch_size)))
        self.lengths = torch.Generator().manual_seed(config.optim.seed)  # variable BPTT: the same on every rank
        self.hidden: Any = None
        self.val_loss = math.nan
        self.best = BestWeights() if config.keep_best else None  # its value: the validation loss

    def _eval_shard(self, data: torch.Tensor) -> torch.Tensor:
        return data[:, self.dist.shard(data.size(1))] if self.dist.enabled else data

    # ------------------------------------------------------------------ training

    def batches_per_epoch(self) -> int:
        return math.ceil((self.steps_per_epoch_source - 1) / self.bptt)

    def batch_number(self, position: int) -> int:
        return math.ceil(position / self.bptt)

    def epoch_fraction(self, position: int) -> float:
        return position / max(1, self.steps_per_epoch_source - 1)

    def train_batches(self, epoch: int, position: int) -> Iterator[tuple[int, Any]]:
        for pos, inputs, targets in bptt_batches(self.train, self.bptt, start=position, variable=self.variable,
                                                 generator=self.lengths):
            yield pos + inputs.size(0), (inputs, targets)

    def end_epoch(self) -> None:
        self.hidden = None

    def loss(self, model: torch.nn.Module, batch: Any) -> StepOutput:
        inputs, targets = batch
        total, loss, self.hidden = lm_training_loss(model, inputs, targets, self.hidden, self.alpha, self.beta)
        # AWD-LSTM scales the learning rate with the window length under variable bptt
        lr_scale = inputs.size(0) / self.bptt if self.variable else 1.0
        scaled = total * self.loss_scale if self.loss_scale != 1.0 else total
        return StepOutput(scaled, loss.detach(), targets.numel(), {"tokens": targets.numel()}, lr_scale)

    def step_values(self, mean_loss: float, stats: dict[str, float]) -> dict[str, Any]:
        return {"ppl": perplexity(mean_loss)}

    def window_text(self, mean_loss: float, stats: dict[str, float], seconds: float) -> tuple[dict[str, str], str]:
        rate = stats.get("tokens", 0) / seconds if seconds > 0 else 0.0
        ppl = perplexity(mean_loss)
        return ({"loss": f"{mean_loss:.3f}", "ppl": f"{ppl:.1f}", "tok_s": f"{rate:,.0f}"},
                f"loss {mean_loss:.3f} | ppl {ppl:.1f} | {rate:,.0f} tok/s")

    def rate_text(self, progress: Progress) -> str:
        return f"{progress.per_second(progress.train_tokens) or 0.0:,.0f} tok/s"

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, data: torch.Tensor) -> float:
        """Mean loss per token over all ranks' columns of ``data``."""
        return evaluate(self.model, data, self.bptt, self.precision, self.dist)[0]

    def validate(self, step: int) -> Validation:
        """Validation perplexity of the model's weights; with ``keep_best``, keeps them when they are
        better than every earlier validation (awd-lstm-lm: strictly lower loss)."""
        self.val_loss = self._evaluate(self.valid)
        best = self.best
        if best is not None and (best.step < 0 or math.isnan(best.value) or self.val_loss < best.value):
            best.keep(self.model, self.val_loss, step)
        ppl = perplexity(self.val_loss)
        return Validation(self.val_loss, {"val_ppl": finite(ppl)}, {"loss": self.val_loss, "ppl": ppl},
                          f"valid ppl {ppl:.2f}")

    def _tested_val_loss(self) -> float:
        """The validation loss of the weights the test uses: the best's with ``keep_best``, else the last."""
        return self.best.value if self.best is not None and self.best.step >= 0 else self.val_loss

    def test(self) -> float:
        """Test loss of the last weights, or with ``keep_best`` of the best validation's (the model keeps its own)."""
        if self.best is None:
            return self._evaluate(self.test_data)
        with self.best.applied(self.model):
            return self._evaluate(self.test_data)

    def test_log(self, result: float) -> dict[str, Any]:
        return {"loss": result, "ppl": perplexity(result)}

    # ------------------------------------------------------------------ checkpoint and metrics

    def state(self, progress: Progress) -> dict[str, Any]:
        hidden = None
        if progress.position > 0:  # mid-epoch: the state of all columns, gathered from the ranks
            parts = self.dist.gather(self.model.pack_hidden(detach_hidden(self.hidden)))
            hidden = _cat(parts, -2) if self.dist.enabled else parts[0]
        state = {"vocab": list(self.corpus.vocab.itos), "hidden": hidden, "bptt_rng": self.lengths.get_state()}
        if self.best is not None:
            state.update(best_model=self.best.weights(self.model),
                         best={"val_loss": self.best.value, "step": self.best.step})
        return state

    def load_state(self, checkpoint: dict[str, Any], progress: Progress) -> None:
        self.hidden = None
        if checkpoint.get("hidden") is not None and progress.position > 0:
            hidden = checkpoint["hidden"]
            if self.dist.enabled:
                hidden = _narrow(hidden, -2, self.columns)
            self.hidden = _to_device(self.model.unpack_hidden(hidden), self.dist.device)
        if checkpoint.get("bptt_rng") is not None:
            self.lengths.set_state(checkpoint["bptt_rng"])
        if self.best is not None and "best" in checkpoint:
            best = checkpoint["best"]
            self.best.load(best["val_loss"], best["step"], checkpoint["best_model"])

    def metrics(self, progress: Progress, test: Optional[float]) -> dict[str, Any]:
        epoch_ppls = [h["val_ppl"] for h in progress.history if h.get("val_ppl") is not None]
        val_loss = self._tested_val_loss()
        best = {} if self.best is None else {
            "last_val_ppl": None if math.isnan(self.val_loss) else finite(perplexity(self.val_loss)),
            "best_step": self.best.step if self.best.step >= 0 else None}
        return {
            "val_ppl": None if math.isnan(val_loss) else finite(perplexity(val_loss)),  # of the tested weights
            "val_loss": finite(val_loss),
            **best,
            "test_ppl": None if test is None else finite(perplexity(test)),
            "test_loss": None if test is None else finite(test),
            "best_epoch_val_ppl": min(epoch_ppls) if epoch_ppls else None,
            "vocab_size": len(self.corpus.vocab),
        }

    def done_text(self, progress: Progress, test: float) -> str:
        best = " (best)" if self.best is not None else ""
        return (f"valid ppl {perplexity(self._tested_val_loss()):.2f}{best} | test ppl {perplexity(test):.2f} | "
                f"{self.rate_text(progress)}")


def _to_device(state: Any, device: torch.device) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if hasattr(state, "apply") and hasattr(state, "inputs"):  # a QRNNState: h, c and the history
        return state.apply(lambda t: t.to(device))
    items = [_to_device(s, device) for s in state]
    return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
