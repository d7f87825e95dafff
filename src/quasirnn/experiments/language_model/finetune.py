"""Fine-tuning a trained language model as awd-lstm-lm's ``finetune.py`` does (``quasirnn lm finetune``).

A fine-tuning is a new run, in its own directory (by default ``RUN-finetune`` beside the trained
run, which it only reads), that starts from the trained run's tested weights (the best
validation's with ``keep_best``, else its last: the averaged ones if it averaged) with the run's
configuration and these changes (:data:`FINETUNE`): averaged SGD from the first step at the run's
learning rate and weight decay (``--optimizer asgd``: ``torch.optim.ASGD``, t0 = 0, λ = 0), no
other learning-rate schedule, the best validation's weights kept and tested, and the stop of
``finetune.py``: after the first epoch whose validation (of the averaged weights) is worse than
the best before the last ``nonmono`` epochs. Its first "best" is the trained weights' own
validation (``finetune.py``'s ``stored_loss``), so a fine-tuning that never improves ends with
the weights it started from. A preset's fine-tuning command adds its own values (PTB: seed 404,
300 epochs; :attr:`~quasirnn.experiments.language_model.presets.LMPreset.finetune`), and the
options given last. It resumes like any run (``lm finetune --resume OUT`` or ``lm train --resume OUT``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from quasirnn.checkpoint_file import load_module_state
from quasirnn.errors import DataError
from quasirnn.experiments.language_model.config import LMConfig
from quasirnn.experiments.language_model.presets import PRESETS
from quasirnn.experiments.language_model.run import EXPERIMENT, make_task, tested_weights
from quasirnn.training import Distributed
from quasirnn.training.config import SESSION
from quasirnn.training.launch import Experiment, Start, TaskAndHeader, checkpoint_path, load_run
from quasirnn.training.outdir import refuse_earlier_run

__all__ = ["FINETUNE", "finetune_config", "start_finetune"]

#: What a fine-tuning changes in the trained run's configuration (awd-lstm-lm ``finetune.py``).
FINETUNE: dict[str, Any] = {"optimizer": "asgd", "lr_decay": 1.0, "when": [], "keep_best": True}


def finetune_config(config: LMConfig, source: str, given: Mapping[str, Any]) -> LMConfig:
    """The configuration of a fine-tuning of the run of ``config`` saved in ``source``: ``config`` with
    the defaults of this session's fields (device, threads, logging) but its data directory,
    :data:`FINETUNE`, its preset's fine-tuning values, then ``given`` (flat), and ``finetuned_from``.

    Example::

        >>> config = finetune_config(PRESETS["awd-qrnn-ptb"].config, "runs/ptb", {"time_budget": 60.0})
        >>> config.optim.optimizer, config.optim.seed, config.run.epochs, config.run.time_budget, config.keep_best
        ('asgd', 404, 300, 60.0, True)
    """
    preset = PRESETS[config.preset].finetune if config.preset in PRESETS else {}
    fresh = LMConfig().to_dict()
    session = {k: fresh[k] for k, kind in LMConfig.resume_kinds().items() if kind == SESSION and k != "data"}
    return config.replace(**{**session, **FINETUNE, **preset, **given, "finetuned_from": source})


def _from_trained(weights: dict, vocab: list[str], path: Path) -> Callable[[Any, Optional[dict], Distributed],
                                                                           TaskAndHeader]:
    """The experiment's ``make_task`` for a new fine-tuning: the model holds ``weights``, validated as the
    best so far; a resumed fine-tuning is built from its own checkpoint."""

    def make(config: LMConfig, checkpoint: Optional[dict], dist: Distributed) -> TaskAndHeader:
        task, header = make_task(config, checkpoint, dist)
        if checkpoint is None:
            if task.corpus.vocab.itos != list(vocab):
                raise DataError(f"the training split in {task.corpus.directory} does not give the vocabulary of "
                                f"{path} ({len(task.corpus.vocab)} vs {len(vocab)} words); pass the run's --data")
            load_module_state(task.model, weights, path)
            task.validate(step=0)  # finetune.py's stored_loss: the trained weights are the best so far
        return task, header

    return make


def start_finetune(source: str, given: Mapping[str, Any], out: Optional[str] = None,
                   overwrite: bool = False) -> tuple[Experiment, Start]:
    """The experiment and start (:func:`~quasirnn.training.launch.run_training`'s) of a fine-tuning of
    the run ``source`` (its output directory or checkpoint file).

    Args:
        source: the trained run.
        given: configuration fields given on the command line (flat): run length, seed, lr, data, execution.
        out: the fine-tuning's output directory (default: ``SOURCE_DIR-finetune`` beside the run).
        overwrite: ``out`` may hold an earlier run's results, which are replaced.

    Raises:
        CheckpointError: ``source`` holds no language-model checkpoint.
        ConfigError: ``out`` holds an earlier run (without ``overwrite``); invalid options.
        RunLockedError: another process writes ``out``.
    """
    path = checkpoint_path(source)
    checkpoint, config = load_run(path, EXPERIMENT, ("model", "vocab"))
    weights = checkpoint["best_model" if tested_weights(checkpoint, config) == "best" else "model"]
    out_dir = Path(out) if out is not None else path.parent.with_name(path.parent.name + "-finetune")
    refuse_earlier_run(out_dir, overwrite)
    config = finetune_config(config, str(path.parent.resolve()), given)
    experiment = dataclasses.replace(EXPERIMENT, make_task=_from_trained(weights, checkpoint["vocab"], path))
    return experiment, (config, out_dir, None, None)
