"""Character-level German→English translation (QRNN §3.3; ``quasirnn translate``): configuration,
model builder, data, the training task and checkpoint loading."""

from quasirnn.experiments.translation.config import (KIND, SRC_LANG, TEST_SPLIT, TGT_LANG, VAL_SPLIT,
                                                     TranslateConfig, TranslatorOptions, build_translator)
from quasirnn.experiments.translation.run import (EXPERIMENT, evaluate_checkpoint, load_for_inference, load_split,
                                                  make_task, resolve_multi30k_dir, upgrade_checkpoint)
from quasirnn.experiments.translation.task import (TranslationData, TranslationTask, bleu, epoch_batches,
                                                   translate_lines, translation_loss)

__all__ = ["EXPERIMENT", "KIND", "SRC_LANG", "TEST_SPLIT", "TGT_LANG", "TranslateConfig", "TranslatorOptions",
           "TranslationData", "TranslationTask", "VAL_SPLIT", "bleu", "build_translator", "evaluate_checkpoint",
           "epoch_batches", "load_for_inference", "load_split", "make_task", "resolve_multi30k_dir", "translate_lines",
           "translation_loss", "upgrade_checkpoint"]
