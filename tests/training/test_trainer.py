"""The shared trainer with a task of its own (the way a new command plugs in): a linear regression
whose data can hold a NaN, and whose validation results are scripted."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from quasirnn.training import Distributed, StepOutput, Task, Trainer, Validation
from quasirnn.training.config import Optimisation, RunOptions, TrainingConfig
from quasirnn.training.guards import DivergedError


class Regression(Task):
    """y = x·w on 32 examples in batches of 4 (8 steps an epoch); ``nan_at`` poisons that step's batch,
    ``validations`` scripts the validation losses."""

    kind, metric, mode = "regression", "loss", "min"

    def __init__(self, nan_at=None, validations=()):
        torch.manual_seed(0)
        self.model = nn.Linear(3, 1)
        self.x = torch.randn(32, 3)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])
        self.nan_at = nan_at
        self.validations = list(validations)

    def batches_per_epoch(self):
        return 8

    def batch_number(self, position):
        return position

    def epoch_fraction(self, position):
        return position / 8

    def train_batches(self, epoch, position):
        for i in range(position, 8):
            x = self.x[4 * i : 4 * i + 4].clone()
            if epoch * 8 + i + 1 == self.nan_at:
                x[0, 0] = math.nan
            yield i + 1, (x, self.y[4 * i : 4 * i + 4])

    def loss(self, model, batch):
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        return StepOutput(loss, loss.detach(), len(x), {"tokens": len(x)})

    def step_values(self, mean_loss, stats):
        return {}

    def window_text(self, mean_loss, stats, seconds):
        return {}, f"loss {mean_loss:.3f}"

    def rate_text(self, progress):
        return "fast"

    def validate(self, step):
        value = self.validations.pop(0) if self.validations else 1.0
        return Validation(value, {"val_loss": value}, {"loss": value}, f"val loss {value}")

    def test(self):
        return 0.5

    def test_log(self, result):
        return {"loss": result}

    def state(self, progress):
        return {}

    def load_state(self, checkpoint, progress):
        pass

    def metrics(self, progress, test):
        return {"test_loss": test}

    def done_text(self, progress, test):
        return f"test loss {test}"


CONFIG = TrainingConfig(cell="linear", optim=Optimisation(optimizer="sgd", lr=0.1, clip=0.0, lr_decay=0.5, seed=1),
                        run=RunOptions(epochs=4, time_budget=None, log_interval=100, checkpoint_every=2))


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(Regression(nan_at=11), CONFIG, tmp_path, Distributed())
    with pytest.raises(DivergedError) as info:
        trainer.fit()
    assert str(info.value) == (f"the training loss became nan at step 11 (epoch 2); stopped: the last good checkpoint, "
                               f"of step 10, is kept in {tmp_path / 'checkpoint.pt'}")
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["progress"]["step"] == 10 and all(bool(torch.isfinite(p).all()) for p in saved["model"].values())
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]
    assert steps == list(range(1, 11))


def test_learning_rate_halves_after_a_validation_without_improvement(tmp_path, capsys):
    task = Regression(validations=[3.0, 2.0, 2.5, 2.0])
    assert Trainer(task, CONFIG.replace(checkpoint_every=0), tmp_path, Distributed()).fit() == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert [h["lr"] for h in m["history"]] == [0.1, 0.1, 0.05, 0.025]  # 2.5 and 2.0 do not beat 2.0
    assert m["stop_reason"] == "epochs" and m["steps"] == 32 and m["train_tokens"] == 128 and m["test_loss"] == 0.5
    out = capsys.readouterr().out
    assert "epoch 3 | val loss 2.5 (no improvement) | step 24 | fast" in out
    assert f"done (epochs) after 32 steps, 4.00 epochs | test loss 0.5 | saved {tmp_path}" in out


def test_weights_that_stop_being_finite_are_not_saved(tmp_path):
    trainer = Trainer(Regression(), CONFIG.replace(lr=1e38, checkpoint_every=1), tmp_path, Distributed())
    with pytest.raises(DivergedError, match=r"(loss became|weights hold NaN or infinite values after) .*step (\d+)"):
        trainer.fit()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert all(bool(torch.isfinite(p).all()) for p in saved["model"].values())


def test_lr_patience_tolerates_that_many_validations_without_improvement(tmp_path):
    task = Regression(validations=[3.0, 3.5, 3.2, 3.1, 2.0, 2.5])
    config = CONFIG.replace(epochs=6, checkpoint_every=0, lr_patience=1)
    assert Trainer(task, config, tmp_path, Distributed()).fit() == 0
    lrs = [h["lr"] for h in json.loads((tmp_path / "metrics.json").read_text())["history"]]
    # 3.5: first miss (tolerated), 3.2: second in a row -> decay; 3.1: first after the decay; 2.0 best; 2.5 tolerated
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.05, 0.05]


def test_negative_lr_patience_is_refused():
    from quasirnn.training.optim import plateau_scheduler

    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="patience must be an integer >= 0, got -1"):
        plateau_scheduler(optimizer, "min", 0.5, -1)


def test_kernel_compilation_is_not_training_time(tmp_path, monkeypatch):
    """Seconds spent compiling CPU kernels inside a step (first use) leave train_time_s and tokens/s."""
    from quasirnn.ops._cpu import runtime as cpu_runtime

    clock = {"now": 1000.0}
    monkeypatch.setattr("quasirnn.training.trainer.time.perf_counter", lambda: clock["now"])
    task = Regression()
    real_loss = task.loss

    def loss(model, batch):
        clock["now"] += 0.25  # each step: 0.25 s of training ...
        if clock.get("compiled") is None:  # ... and, on the first one, 30 s of kernel compilation
            clock["compiled"] = True
            clock["now"] += 30.0
            monkeypatch.setattr(cpu_runtime, "_compile_seconds", cpu_runtime._compile_seconds + 30.0)
        return real_loss(model, batch)

    task.loss = loss
    Trainer(task, CONFIG.replace(epochs=1), tmp_path, Distributed()).fit()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train_time_s"] == pytest.approx(8 * 0.25)
