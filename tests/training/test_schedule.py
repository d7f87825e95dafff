"""training/schedule.py: NT-ASGD exactly as awd-lstm-lm's main.py (the switch condition, the averaged
weights for validation, test and checkpoints, exact resume in both phases), its fine-tuning stop
(finetune.py), and the step decay ``when``; driven through the trainer by scripted validation values."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn

from quasirnn.errors import ConfigError
from quasirnn.training import Distributed, Trainer, Validation
from quasirnn.training.config import Optimisation
from quasirnn.training.schedule import Schedule
from test_trainer import CONFIG, Regression  # the trainer's test task: y = x·w, 8 steps an epoch

NT_ASGD = CONFIG.replace(optimizer="sgd", lr=0.05, lr_decay=1.0, nonmono=2, epochs=7, checkpoint_every=0)
#: validation values by epoch: the SGD epochs 1-5; epoch 5 (2.1) is worse than min(3.0, 2.0) of those
#: before the last 2 → the switch after epoch 5, then averaged epochs 6, 7
SCRIPT = [3.0, 2.0, 2.5, 2.2, 2.1, 1.9, 1.8]


class Scripted(Regression):
    """Validation values by epoch (the step says which), the weights each validation saw, the test's weights."""

    def __init__(self, script=SCRIPT):
        super().__init__()
        self.script, self.seen, self.tested = script, [], None

    def validate(self, step):
        value = self.script[(step - 1) // 8]
        self.seen.append(self.model.weight.detach().clone())
        return Validation(value, {"val_loss": value}, {"loss": value}, f"val loss {value}")

    def test(self):
        self.tested = self.model.weight.detach().clone()
        return 0.5


def awd_trigger_epoch(values, nonmono):
    """The epoch (1-based) at which awd-lstm-lm's loop acts, or None: main.py's ``best_val_loss`` loop switches
    to ASGD there, finetune.py's (the same condition on the averaged weights' ``val_loss2``) stops there."""
    best_val_loss = []
    for epoch, val_loss in enumerate(values, 1):
        if len(best_val_loss) > nonmono and val_loss > min(best_val_loss[:-nonmono]):
            return epoch
        best_val_loss.append(val_loss)
    return None


@pytest.mark.parametrize("nonmono", [1, 2, 5])
def test_the_switch_happens_exactly_on_awd_lstm_lms_condition(nonmono):
    rng = random.Random(nonmono)
    for _ in range(200):
        values = [round(rng.uniform(1.0, 2.0), 1) for _ in range(rng.randint(1, 14))]  # ties happen: > is strict
        schedule = Schedule(nn.Linear(2, 1), Optimisation(optimizer="sgd", lr=1.0, lr_decay=1.0, nonmono=nonmono),
                            "min")
        switched = None
        for epoch, value in enumerate(values, 1):
            if schedule.end_of_epoch(epoch, value).events:
                switched = epoch
                break
        assert switched == awd_trigger_epoch(values, nonmono), values
        assert isinstance(schedule.optimizer, torch.optim.ASGD) == (switched is not None)
        if switched is not None:  # ASGD as awd builds it: lr, t0 = 0, lambd = 0, the weight decay
            group = schedule.optimizer.param_groups[0]
            assert (group["lr"], group["t0"], group["lambd"], group["weight_decay"]) == (1.0, 0, 0.0, 0.0)


@pytest.mark.parametrize("nonmono", [1, 3])
def test_an_averaged_run_stops_exactly_on_awd_lstm_lms_finetune_condition(nonmono):
    rng = random.Random(10 + nonmono)
    for _ in range(200):
        values = [round(rng.uniform(1.0, 2.0), 1) for _ in range(rng.randint(1, 14))]
        schedule = Schedule(nn.Linear(2, 1), Optimisation(optimizer="asgd", lr=1.0, nonmono=nonmono), "min")
        stopped = next((e for e, v in enumerate(values, 1) if schedule.end_of_epoch(e, v).stop), None)
        assert stopped == awd_trigger_epoch(values, nonmono), values


def test_mode_max_and_no_validation_data():
    schedule = Schedule(nn.Linear(2, 1), Optimisation(optimizer="sgd", lr=1.0, lr_decay=1.0, nonmono=1), "max")
    assert [bool(schedule.end_of_epoch(e, v).events) for e, v in enumerate([0.5, 0.6, 0.4], 1)] == [False, False, True]
    schedule = Schedule(nn.Linear(2, 1), Optimisation(optimizer="sgd", lr=1.0, nonmono=1), "min")
    assert all(schedule.end_of_epoch(e, float("nan")).improved for e in range(1, 5))
    assert schedule.history == [] and not schedule.averaging


def test_nt_asgd_run_validates_tests_and_saves_the_averaged_weights(tmp_path, capsys):
    task = Scripted()
    trainer = Trainer(task, NT_ASGD, tmp_path, Distributed())
    assert trainer.fit() == 0
    optimizer = trainer.schedule.optimizer
    assert isinstance(optimizer, torch.optim.ASGD)
    ax = optimizer.state[task.model.weight]["ax"]
    # epochs 1-5 validate the SGD weights as they are; 6 and 7 the average, which differs from the raw weights
    assert not torch.equal(task.seen[-1], task.model.weight.detach()) and torch.equal(task.seen[-1], ax)
    assert torch.equal(task.tested, ax)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert torch.equal(saved["model"]["weight"], ax)  # the run's model is the average ...
    assert torch.equal(saved["training_weights"]["weight"], task.model.weight.detach())  # ... and training goes on from these
    assert saved["schedule"] == {"averaging": True, "history": SCRIPT[:5], "best": 1.8, "stopped": False}
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert [h["averaged"] for h in m["history"]] == [False] * 5 + [True] * 2
    assert [h["lr"] for h in m["history"]] == [0.05] * 7 and m["stop_reason"] == "epochs"
    out = capsys.readouterr().out
    assert "epoch 5 | val loss 2.1 (no improvement) | step 40 | fast | train time 0 s | switched to averaged SGD (NT-ASGD)" in out


@pytest.mark.parametrize("stop_at", [20, 44], ids=["sgd-phase", "averaging-phase"])
def test_resume_is_exact_in_both_phases(tmp_path, stop_at):
    (tmp_path / "straight").mkdir(), (tmp_path / "split").mkdir()
    straight = Trainer(Scripted(), NT_ASGD, tmp_path / "straight", Distributed())
    straight.fit()
    first = Trainer(Scripted(), NT_ASGD.replace(max_steps=stop_at), tmp_path / "split", Distributed())
    first.fit()
    assert isinstance(first.schedule.optimizer, torch.optim.ASGD) == (stop_at > 40)
    checkpoint = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    resumed = Trainer(Scripted(), NT_ASGD, tmp_path / "split", Distributed())
    resumed.fit(checkpoint, tmp_path / "split" / "checkpoint.pt")
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("straight", "split"))
    for key in ("model", "training_weights"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    state_a, state_b = a["optimizer"]["state"][0], b["optimizer"]["state"][0]
    assert all(torch.equal(state_a[k], state_b[k]) for k in ("ax", "mu", "eta", "step"))
    assert a["schedule"] == b["schedule"] and a["progress"]["step"] == b["progress"]["step"] == 56
    assert [h["val_loss"] for h in a["progress"]["history"]] == [h["val_loss"] for h in b["progress"]["history"]]


def test_an_averaged_run_stops_on_the_nonmono_condition(tmp_path):
    config = CONFIG.replace(optimizer="asgd", lr=0.05, nonmono=1, epochs=10, checkpoint_every=0)
    # epoch 3 (2.5) is not worse than 3.0, the best before the last value; epoch 4 (2.6) is worse than min(3.0, 2.0)
    trainer = Trainer(Scripted([3.0, 2.0, 2.5, 2.6] + [1.0] * 6), config, tmp_path, Distributed())
    assert trainer.fit() == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["stop_reason"] == "nonmono" and m["epochs_completed"] == 4 and m["finished"]
    assert all(h["averaged"] for h in m["history"])


def test_when_divides_the_learning_rate_before_averaging_only(tmp_path):
    (tmp_path / "adam").mkdir(), (tmp_path / "sgd").mkdir()
    config = CONFIG.replace(optimizer="adam", lr=0.01, lr_decay=1.0, when=[2, 3], epochs=4, checkpoint_every=0)
    Trainer(Scripted([3.0, 2.0, 1.0, 0.5]), config, tmp_path / "adam", Distributed()).fit()
    lrs = [h["lr"] for h in json.loads((tmp_path / "adam" / "metrics.json").read_text())["history"]]
    assert lrs == pytest.approx([0.01, 0.001, 0.0001, 0.0001])
    # awd-lstm-lm: the division of the switch epoch hits the new ASGD; averaged epochs are not divided
    config = NT_ASGD.replace(when=[5, 6])
    Trainer(Scripted(), config, tmp_path / "sgd", Distributed()).fit()
    lrs = [h["lr"] for h in json.loads((tmp_path / "sgd" / "metrics.json").read_text())["history"]]
    assert lrs == pytest.approx([0.05] * 4 + [0.005] * 3)


def test_bad_schedule_options_are_refused():
    with pytest.raises(ConfigError, match="--nonmono must be >= 0, got -1"):
        Optimisation(nonmono=-1)
    with pytest.raises(ConfigError, match=r"--when lists epochs, each >= 1, got \[0\]"):
        Optimisation(when=[0])
