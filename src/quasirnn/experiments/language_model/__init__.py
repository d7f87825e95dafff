"""Word-level language modelling (QRNN §3.2; ``quasirnn lm``): configuration and presets, model
builder, data resolution, the training task, the evaluation (:func:`evaluate`, the one place a
language model's perplexity is computed), the neural cache at evaluation (:func:`evaluate_with_cache`),
checkpoint evaluation, and the fine-tuning of a trained run."""

from quasirnn.experiments.language_model.cache_pointer import CacheEvaluation, NeuralCache, evaluate_with_cache
from quasirnn.experiments.language_model.config import (ADAPTIVE_FROM, KIND, LanguageModelOptions, LMConfig,
                                                        build_model, resolve_softmax)
from quasirnn.experiments.language_model.evaluation import evaluate
from quasirnn.experiments.language_model.finetune import FINETUNE, finetune_config, start_finetune
from quasirnn.experiments.language_model.presets import (CACHE_DEFAULTS, PRESETS, LMPreset, cache_defaults,
                                                         new_run_defaults)
from quasirnn.experiments.language_model.run import (EXPERIMENT, data_directory, evaluate_checkpoint,
                                                     evaluate_checkpoint_with_cache, make_task, tested_weights)
from quasirnn.experiments.language_model.task import (LanguageModelTask, activation_regularisation, lm_loss,
                                                      lm_training_loss, perplexity)

__all__ = ["ADAPTIVE_FROM", "CACHE_DEFAULTS", "CacheEvaluation", "EXPERIMENT", "FINETUNE", "KIND", "LMConfig",
           "LMPreset", "LanguageModelOptions", "LanguageModelTask", "NeuralCache", "PRESETS",
           "activation_regularisation", "build_model", "cache_defaults", "data_directory", "evaluate",
           "evaluate_checkpoint", "evaluate_checkpoint_with_cache", "evaluate_with_cache", "finetune_config",
           "lm_loss", "lm_training_loss", "make_task", "new_run_defaults", "perplexity", "resolve_softmax",
           "start_finetune", "tested_weights"]
