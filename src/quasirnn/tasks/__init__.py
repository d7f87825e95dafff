"""The training tasks of the ``quasirnn`` commands: what each one gives the shared trainer.

- :class:`LanguageModelTask` — ``quasirnn lm train`` (word-level language modelling, QRNN §3.2).
- :class:`ClassificationTask` — ``quasirnn classify train`` (IMDb sentiment, QRNN §3.1).
- :class:`TranslationTask` — ``quasirnn translate train`` (character-level translation, QRNN §3.3).

A new command adds a module here with a :class:`quasirnn.training.Task` subclass.
"""

from quasirnn.tasks.classification import ClassificationTask
from quasirnn.tasks.language_model import LanguageModelTask
from quasirnn.tasks.translation import TranslationTask

__all__ = ["ClassificationTask", "LanguageModelTask", "TranslationTask"]
