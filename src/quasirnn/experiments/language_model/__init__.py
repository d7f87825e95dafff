"""Word-level language modelling (QRNN §3.2; ``quasirnn lm``): configuration and presets, model
builder, data resolution, the training task, the evaluation (:func:`evaluate`, the one place a
language model's perplexity is computed), checkpoint evaluation, and the fine-tuning of a trained run."""

from quasirnn.experiments.language_model.config import (ADAPTIVE_FROM, KIND, LanguageModelOptions, LMConfig,
                                                        build_model, resolve_softmax)
from quasirnn.experiments.language_model.evaluation import evaluate
from quasirnn.experiments.language_model.finetune import FINETUNE, finetune_config, start_finetune
from quasirnn.experiments.language_model.presets import PRESETS, LMPreset, new_run_defaults
from quasirnn.experiments.language_model.run import (EXPERIMENT, data_directory, evaluate_checkpoint, make_task,
                                                     tested_weights)
from quasirnn.experiments.language_model.task import (LanguageModelTask, activation_regularisation, lm_loss,
                                                      lm_training_loss, perplexity)

__all__ = ["ADAPTIVE_FROM", "EXPERIMENT", "FINETUNE", "KIND", "LMConfig", "LMPreset", "LanguageModelOptions",
           "LanguageModelTask", "PRESETS", "activation_regularisation", "build_model", "data_directory", "evaluate",
           "evaluate_checkpoint", "finetune_config", "lm_loss", "lm_training_loss", "make_task", "new_run_defaults",
           "perplexity", "resolve_softmax", "start_finetune", "tested_weights"]
