"""Test helper, run by torchrun: ``quasirnn ARGV`` as one rank, then this rank's final weights saved
to ``$QUASIRNN_TEST_WEIGHTS/rank{RANK}.pt`` (only rank 0 writes the run's own files, so the tests
need this to compare the ranks' parameters)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from quasirnn.cli.main import main
from quasirnn.training.trainer import Trainer

_fit = Trainer.fit


def _fit_and_keep_weights(self, *args, **kwargs):
    try:
        return _fit(self, *args, **kwargs)
    finally:
        torch.save(self.model.state_dict(), Path(os.environ["QUASIRNN_TEST_WEIGHTS"]) / f"rank{self.dist.rank}.pt")


Trainer.fit = _fit_and_keep_weights

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
