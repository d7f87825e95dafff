"""The training machinery shared by every ``quasirnn … train`` command.

- :mod:`~quasirnn.training.trainer` — :class:`Trainer`, the loop: epochs, limits, signals,
  checkpoints, logs, the schedule's hooks, metrics.
- :mod:`~quasirnn.training.task` — :class:`Task`, what a command supplies (model, batches, loss,
  evaluation, log texts).
- :mod:`~quasirnn.training.launch` — a new or resumed run of an experiment, started and trained.
- :mod:`~quasirnn.training.config`, :mod:`~quasirnn.training.options` — the typed run
  configuration, and each field's command-line option.
- :mod:`~quasirnn.training.distributed` — torchrun / DistributedDataParallel set-up and data shards.
- :mod:`~quasirnn.training.run_state` — checkpoint.pt and metrics.json of a run, RNG states.
- :mod:`~quasirnn.training.runlog` — OUT/log.jsonl and TensorBoard; :mod:`~quasirnn.training.plots` — their curves.
- :mod:`~quasirnn.training.run_lock` — OUT/run.lock: one writer per run directory.
- :mod:`~quasirnn.training.guards` — NaN/inf loss or weights stop the run.
- :mod:`~quasirnn.training.interrupts` — SIGINT/SIGTERM handling.
- :mod:`~quasirnn.training.schedule` — the optimizer's schedule over the epochs: decays, NT-ASGD.
- :mod:`~quasirnn.training.optim`, :mod:`~quasirnn.training.progress`,
  :mod:`~quasirnn.training.console`, :mod:`~quasirnn.training.device` — optimizers, the update
  step and the plateau decay, counters and limits, terminal output, devices.
"""

from quasirnn.training.distributed import Distributed, setup_distributed
from quasirnn.training.task import StepOutput, Task, Validation
from quasirnn.training.trainer import Trainer

__all__ = ["Distributed", "StepOutput", "Task", "Trainer", "Validation", "setup_distributed"]
