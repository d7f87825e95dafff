"""The training loop shared by every ``quasirnn … train`` command.

:class:`Trainer` runs a :class:`~quasirnn.training.task.Task` for its epochs: each step takes
this rank's batch, backpropagates through the (DistributedDataParallel-wrapped) model, clips and
steps the optimizer, sums the step's loss and counts over the ranks, appends them to
``OUT/log.jsonl``, and stops the run when the loss stops being finite. After each epoch it
validates, applies the optimisation schedule (:class:`~quasirnn.training.schedule.Schedule`:
decays, NT-ASGD; while it averages, validation, test and the saved ``model`` use the averaged
weights) and saves a checkpoint; ``--checkpoint-every`` saves one every that many steps as well.
It stops at the end of the epochs, at ``--max-steps``, at ``--time-budget`` (both count the whole
run, resumed invocations included), when an averaged-SGD run stops improving (``--optimizer asgd
--nonmono N``), or on SIGINT/SIGTERM, every rank at the same step; then it evaluates
the final weights and writes ``OUT/checkpoint.pt`` and ``OUT/metrics.json`` (rank 0 only).

Exit statuses of :meth:`Trainer.fit`: 0 when the run ended and was evaluated, 130 (128 + SIGINT)
when a Ctrl-C stopped it (after saving, evaluating and reporting, so ``train && deploy`` does not
go on), 143 (128 + SIGTERM) when SIGTERM stopped it after saving a resumable checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import signal
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from quasirnn.training.precision import autocast, grad_scaler
from quasirnn.training.config import TrainingConfig
from quasirnn.training.run_state import CHECKPOINT_NAME, restore_training_state, rng_state, save_run, set_rng_state
from quasirnn.training.console import Log, epoch_bar
from quasirnn.training.distributed import Distributed
from quasirnn.training.guards import DivergedError, check_loss, check_parameters
from quasirnn.training.interrupts import INTERRUPTED_STATUS, StopSignals, pause_if_requested
from quasirnn.training.optim import optimizer_step
from quasirnn.training.progress import Limits, Progress
from quasirnn.training.runlog import RunLog
from quasirnn.training.schedule import Schedule
from quasirnn.training.task import StepOutput, Task

__all__ = ["Trainer"]

#: Exit status after SIGTERM (the shell's convention for a process ended by that signal).
TERMINATED_STATUS = 128 + signal.SIGTERM


def _no_seconds() -> float:
    """The clock of excluded seconds when there is none: nothing is left out."""
    return 0.0


class _Window:
    """Sums of the steps since the last progress line."""

    def __init__(self) -> None:
        self.loss, self.steps, self.seconds = 0.0, 0, 0.0
        self.stats: dict[str, float] = {}

    def add(self, loss: float, stats: dict[str, float], seconds: float) -> None:
        self.loss += loss
        self.steps += 1
        self.seconds += seconds
        for key, value in stats.items():
            self.stats[key] = self.stats.get(key, 0.0) + value


class Trainer:
    """Trains a task's model (see the module docstring).

    Args:
        task: the command's model, data and numbers.
        config: the run's configuration; the trainer reads its sections ``optim`` (optimizer,
            decay, clipping, seed), ``run`` (epochs, limits, logging, checkpoints, ``precision``:
            resolved, not "auto", the run resolves it once) and ``model.cell``, and saves
            :meth:`~quasirnn.training.config.TrainingConfig.to_dict`.
        out: the output directory (it must exist and be writable).
        dist: this rank's place in the run.
        show_bar: show the epoch's progress bar (rank 0 only).
        quiet: no periodic progress lines.
        wall_start: ``time.perf_counter()`` when the command started (for metrics.json).
        excluded_seconds: a clock of seconds that are not training time, e.g. kernels compiled on
            first use (:func:`quasirnn.ops.compile_seconds`, which the experiments pass): the time it
            advances during a step is left out of ``--time-budget``, tokens/s and ``train_time_s``.
            None: every second of a step counts.

    Attributes:
        log: prints a line on rank 0 (for the command's own header line).
        schedule: the optimizer and its schedule (:class:`~quasirnn.training.schedule.Schedule`),
            built from ``config`` for the task's model.
    """

    def __init__(self, task: Task, config: TrainingConfig, out: Path, dist: Distributed, *, show_bar: bool = False,
                 quiet: bool = False, wall_start: Optional[float] = None,
                 excluded_seconds: Optional[Callable[[], float]] = None) -> None:
        self.task, self.config, self.out, self.dist = task, config, Path(out), dist
        self.device = dist.device
        self.precision = config.run.precision
        optim, run = config.optim, config.run
        self.show_bar = show_bar and dist.is_main
        self.quiet = quiet
        self.wall_start = time.perf_counter() if wall_start is None else wall_start
        self.excluded_seconds = excluded_seconds or _no_seconds
        self.log = Log(self.show_bar, enabled=dist.is_main)
        self.model = task.model
        self.schedule = Schedule(self.model, optim, task.mode)
        self.scaler = grad_scaler(self.precision, self.device)
        self.progress = Progress()
        self.limits = Limits(run.max_steps, run.time_budget)
        self.checkpoint_every = run.checkpoint_every or 0
        self.last_validation_step: Optional[int] = None
        self.saved_step: Optional[int] = None
        self.stop_reason: Optional[str] = None
        self.n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if dist.enabled:  # the same initial weights everywhere (seeded before), then each rank its own dropout
            torch.manual_seed(optim.seed + 7919 * (dist.rank + 1))
        self._ddp = self.model
        self._signals = StopSignals()
        self._runlog: Optional[RunLog] = None

    # ------------------------------------------------------------------ the run

    def fit(self, checkpoint: Optional[dict] = None, path: Optional[Path] = None) -> int:
        """Trains from scratch, or from ``checkpoint`` (loaded from ``path``), to the end of the run.

        Returns:
            The exit status: 0, 130 after a Ctrl-C, 143 after SIGTERM.

        Raises:
            DivergedError: the loss or the weights stopped being finite (the last good checkpoint is kept).
            CheckpointError: ``checkpoint`` does not fit the task's model.
            KeyboardInterrupt: a second Ctrl-C during the final evaluation (after the checkpoint was saved).
        """
        if checkpoint is not None:
            self.schedule.load_phase(checkpoint)
            self.progress = restore_training_state(checkpoint, path, self.model, self.schedule.optimizer,
                                                   self.schedule.plateau, self.scaler)
            self.schedule.load_weights(checkpoint, path)
            self.task.load_state(checkpoint, self.progress)
            self._restore_rng(checkpoint)
            self.saved_step = self.progress.step
        self._ddp = self.dist.wrap(self.model)
        self._runlog = RunLog(self.out, enabled=self.dist.is_main,
                              resume_step=self.progress.step if checkpoint is not None else None)
        try:
            with self._signals:
                try:
                    reason = self._train()
                except DivergedError as exc:
                    raise DivergedError(f"{exc}; stopped: {self._kept_text()}", exc.step) from None
                return self._finish(reason)
        finally:
            self._runlog.close()

    def _train(self) -> str:
        """The epochs; returns why they ended."""
        p, task, optim, run = self.progress, self.task, self.config.optim, self.config.run
        while p.epoch < run.epochs:
            reason = self._agreed_stop()
            if reason is not None:
                return reason
            self.model.train()
            batches = task.batches_per_epoch()
            batch_in_epoch = task.batch_number(p.position)
            bar = epoch_bar(batches, batch_in_epoch, p.epoch, run.epochs, self.show_bar)
            window = _Window()
            try:
                for position, batch in task.train_batches(p.epoch, p.position):
                    t0, excluded0 = time.perf_counter(), self.excluded_seconds()
                    with autocast(self.precision, self.device):
                        out = task.loss(self._ddp, batch)
                    optimizer_step(self._ddp, self.schedule.optimizer, out.loss, optim.clip, out.lr_scale,
                                   self.scaler)
                    loss, stats = self._reduce(out)
                    # e.g. a kernel compiled on first use is not training time (budget, tokens/s)
                    dt = time.perf_counter() - t0 - (self.excluded_seconds() - excluded0)

                    p.step += 1
                    p.position = position
                    p.train_tokens += int(stats.get("tokens", 0))
                    p.train_examples += int(stats.get("examples", 0))
                    p.train_time_s += dt
                    batch_in_epoch += 1
                    check_loss(loss, p.step, p.epoch + 1)
                    self._log_step(loss, stats, dt)
                    window.add(loss, stats, dt)
                    bar.update(1)
                    if window.steps >= (10 if self.show_bar else run.log_interval):
                        self._log_window(window, bar, batch_in_epoch, batches)
                        window = _Window()
                    if self.checkpoint_every and p.step % self.checkpoint_every == 0:
                        self._save(self._metrics(None, finished=False))
                    pause_if_requested(p.step, self._signals, self.dist.is_main)
                    reason = self._agreed_stop()
                    if reason is not None:
                        return reason
            finally:
                bar.close()
            p.epoch += 1
            p.position = 0
            task.end_epoch()
            self._end_of_epoch()
            self._save(self._metrics(None, finished=False))
        return "epochs"

    def _finish(self, reason: str) -> int:
        """Saves after a signal; otherwise evaluates, saves the final checkpoint and prints the summary."""
        p, out = self.progress, self.out
        self.stop_reason = reason
        if reason == "terminated":
            self._save(self._metrics(None, finished=False))
            self._signals.saved()
            self.log(f"terminated (SIGTERM) after {p.step} steps: saved {out}; continue with --resume {out}")
            return TERMINATED_STATUS
        if reason == "interrupted":
            self._save(self._metrics(None, finished=False))
            self._signals.saved()
            self.log("interrupted: checkpoint saved; evaluating (Ctrl-C again to abort)")
        with self.schedule.averaged():
            if self.last_validation_step != p.step:  # stopped mid-epoch: validate the weights as they are
                self.task.validate(p.step)
                self.last_validation_step = p.step
            test = self.task.test()
        final = self._metrics(test, finished=True)
        self._save(final)
        self._runlog.write("test", p.step, {"epoch": final["epochs"], **self.task.test_log(test),
                                            "train_time_s": round(p.train_time_s, 4)})
        if self.dist.is_main:
            print(f"done ({reason}) after {p.step} steps, {final['epochs']:.2f} epochs | "
                  f"{self.task.done_text(p, test)} | saved {out}", flush=True)
        return INTERRUPTED_STATUS if reason == "interrupted" else 0

    # ------------------------------------------------------------------ steps

    def _reduce(self, out: StepOutput) -> tuple[float, dict[str, float]]:
        """The step's mean loss over the global batch and its counts summed over the ranks."""
        keys = sorted(out.stats)
        if not self.dist.enabled:
            return float(out.mean_loss), {k: float(out.stats[k]) for k in keys}
        count = float(out.count)
        weighted = float(out.mean_loss) * count if count else 0.0
        sums = self.dist.sum([weighted, count, *(float(out.stats[k]) for k in keys)])
        loss = sums[0] / sums[1] if sums[1] else math.nan
        return loss, dict(zip(keys, sums[2:]))

    def _agreed_stop(self) -> Optional[str]:
        """Why the run stops now, the same on every rank: the schedule, a signal, the time budget, the step
        limit; or None."""
        if self.schedule.stopped:  # decided from the validation every rank shares
            return "nonmono"
        limit = self.limits.reached(self.progress.step, self.progress.train_time_s)
        signum = self._signals.signum
        votes = [signum == signal.SIGTERM, signum == signal.SIGINT, limit == "time_budget", limit == "max_steps"]
        votes = self.dist.sum(votes)
        for vote, reason in zip(votes, ("terminated", "interrupted", "time_budget", "max_steps")):
            if vote:
                return reason
        return None

    def _lr(self) -> float:
        return self.schedule.optimizer.param_groups[0]["lr"]

    def _log_step(self, loss: float, stats: dict[str, float], seconds: float) -> None:
        p = self.progress
        tokens = int(stats.get("tokens", 0))
        self._runlog.write("train", p.step, {
            "epoch": round(p.epoch + self.task.epoch_fraction(p.position), 4), "loss": loss,
            **self.task.step_values(loss, stats), "lr": self._lr(), "tokens": tokens,
            "tokens_per_s": tokens / seconds if seconds > 0 else None, "train_time_s": round(p.train_time_s, 4),
        })

    def _log_window(self, window: _Window, bar, batch_in_epoch: int, batches: int) -> None:
        postfix, text = self.task.window_text(window.loss / window.steps, window.stats, window.seconds)
        if self.show_bar:
            bar.set_postfix(**postfix, refresh=False)
        elif not self.quiet:
            p = self.progress
            self.log(f"epoch {p.epoch + 1} step {p.step} ({batch_in_epoch}/{batches}) | {text} | lr {self._lr():.2e}")

    def _end_of_epoch(self) -> None:
        """Validation (of the averaged weights while averaging), the schedule, the epoch's history entry and log line."""
        p = self.progress
        averaged = {"averaged": self.schedule.averaging} if self.schedule.averages else {}
        with self.schedule.averaged():
            result = self.task.validate(p.step)
        self.last_validation_step = p.step
        outcome = self.schedule.end_of_epoch(p.epoch, result.value)
        p.history.append({"epoch": p.epoch, "step": p.step, **result.record, **averaged, "lr": self._lr(),
                          "train_time_s": round(p.train_time_s, 3)})
        self._runlog.write("valid", p.step, {"epoch": p.epoch, **result.log, "lr": self._lr(),
                                             "train_time_s": round(p.train_time_s, 4)})
        events = "".join(f" | {event}" for event in outcome.events)
        self.log(f"epoch {p.epoch} | {result.text}{'' if outcome.improved else ' (no improvement)'} | step {p.step} | "
                 f"{self.task.rate_text(p)} | train time {p.train_time_s:.0f} s{events}")

    # ------------------------------------------------------------------ checkpoints

    def _save(self, metrics: dict[str, Any]) -> None:
        """Checks the weights, gathers every rank's state, and writes checkpoint and metrics (rank 0)."""
        p = self.progress
        check_parameters(self.model.parameters(), p.step)
        task_state = self.task.state(p)
        rngs = self.dist.gather(rng_state(self.device))
        with self.schedule.averaged():  # the run's model is the average while averaging
            model = self.model.state_dict()
        state = {
            "model": model, "optimizer": self.schedule.optimizer.state_dict(),
            "scheduler": self.schedule.plateau.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(), "progress": dataclasses.asdict(p),
            "rng": rngs[0], "world_size": self.dist.world_size, **self.schedule.checkpoint(), **task_state,
        }
        if self.dist.enabled:
            state["rng_ranks"] = rngs
        if self.dist.is_main:
            save_run(self.out, self.task.kind, self.config.to_dict(), state, metrics)
        self.saved_step = p.step

    def _restore_rng(self, checkpoint: dict) -> None:
        """This rank's RNG state from the checkpoint; a rank the saving run did not have gets a fresh seed."""
        ranks = checkpoint.get("rng_ranks")
        if ranks and len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank], self.device)
        elif self.dist.rank == 0 and "rng" in checkpoint:
            set_rng_state(checkpoint["rng"], self.device)
        else:
            torch.manual_seed(self.config.optim.seed + 7919 * (self.dist.rank + 1) + self.progress.step)

    def _kept_text(self) -> str:
        if self.saved_step is None:
            return "no checkpoint was saved before"
        return f"the last good checkpoint, of step {self.saved_step}, is kept in {self.out / CHECKPOINT_NAME}"

    # ------------------------------------------------------------------ metrics.json

    def _metrics(self, test: Any, finished: bool) -> dict[str, Any]:
        p = self.progress
        return {
            "kind": self.task.kind,
            "cell": self.config.model.cell,
            **self.task.metrics(p, test),
            "train_tokens_per_s": p.per_second(p.train_tokens),
            "params": self.n_params,
            "steps": p.step,
            "epochs": round(p.epoch + self.task.epoch_fraction(p.position), 4),
            "epochs_completed": p.epoch,
            "train_tokens": p.train_tokens,
            "train_time_s": p.train_time_s,
            "wall_time_s": time.perf_counter() - self.wall_start,
            "stop_reason": self.stop_reason,
            "finished": finished,
            "history": p.history,
            "config": self.config.to_dict(),
            "device": str(self.device),
            "world_size": self.dist.world_size,
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
            "python": platform.python_version(),
        }
