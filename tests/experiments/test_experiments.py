"""What every experiment gives the training machinery."""

from __future__ import annotations

import pytest

from quasirnn.experiments.classification import EXPERIMENT as CLASSIFY
from quasirnn.experiments.language_model import EXPERIMENT as LM
from quasirnn.experiments.translation import EXPERIMENT as TRANSLATE
from quasirnn.ops import compile_seconds


@pytest.mark.parametrize("experiment", [LM, CLASSIFY, TRANSLATE], ids=lambda e: e.name)
def test_kernel_compilation_is_left_out_of_every_experiments_training_time(experiment):
    """The trainer leaves out what this clock advances during a step (tests/training/test_trainer.py)."""
    assert experiment.excluded_seconds is compile_seconds
