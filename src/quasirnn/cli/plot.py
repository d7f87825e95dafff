"""``quasirnn plot RUN_DIR [RUN_DIR ...] -o curves.png``: training and validation curves of runs on one figure.

Each run directory is the ``--out`` of a ``train`` command. The left panel draws the training
curve from ``log.jsonl`` (one record per step, smoothed over ``--smooth`` steps), the right one
the validation results (``log.jsonl``'s validation records, or ``metrics.json``'s epoch history
for runs written before log.jsonl existed). Language models show perplexity (log scale),
classifiers accuracy; runs of both kinds cannot share a figure. Each run is labelled by its cell
and size, e.g. ``qrnn 3×600 (5.6M)``. The x axis is training time (default), steps or epochs.

Needs matplotlib (``pip install 'quasirnn[plot]'``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from quasirnn.checkpoint import atomic_write
from quasirnn.cli.common import positive_int
from quasirnn.errors import ConfigError, DataError
from quasirnn.training.checkpoints import METRICS_NAME
from quasirnn.training.runlog import LOG_NAME, read_log

__all__ = ["RunCurves", "add_parser", "read_run", "run_plot"]

#: The quality metric each run kind logs, its axis label, and whether the axis is logarithmic.
_METRICS = {"language_model": ("ppl", "perplexity", True), "classifier": ("accuracy", "accuracy", False)}
#: ``--x`` choices: the record key and the axis label.
_X_AXES = {"time": ("train_time_s", "training time (minutes)"), "step": ("step", "optimizer step"),
           "epoch": ("epoch", "epoch")}


@dataclass
class RunCurves:
    """What a run directory holds for the figure.

    Attributes:
        directory: the run directory.
        kind: ``"language_model"`` or ``"classifier"``.
        label: legend text: cell and size (and the directory name when two runs would look alike).
        train: the per-step records of log.jsonl (split ``train``).
        valid: the validation records (split ``valid``), each with ``step``, ``epoch``,
            ``train_time_s`` and the metric.
    """

    directory: Path
    kind: str
    label: str
    train: list[dict[str, Any]] = field(default_factory=list)
    valid: list[dict[str, Any]] = field(default_factory=list)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``plot`` on the top-level sub-commands."""
    p = commands.add_parser("plot", help="draw training and validation curves of runs",
                            description="Draw the training and validation curves of one or more runs on one figure "
                                        "(needs matplotlib).")
    p.set_defaults(func=run_plot)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="output directories of training runs")
    p.add_argument("-o", "--output", default="curves.png", metavar="FILE",
                   help="image to write; the format follows the suffix: png, pdf, svg (default: curves.png)")
    p.add_argument("--x", choices=tuple(_X_AXES), default="time", dest="x_axis",
                   help="horizontal axis: training time, optimizer steps or epochs (default: time)")
    p.add_argument("--smooth", type=positive_int, default=None, metavar="STEPS",
                   help="average the training curve over this many steps (default: 1/50 of the run's steps)")
    return p


def _label(config: dict[str, Any], params: Optional[int]) -> str:
    size = f"{config.get('num_layers', '?')}×{config.get('hidden_size', '?')}"
    count = "" if not params else f" ({params / 1e6:.1f}M)" if params >= 1e6 else f" ({params / 1e3:.0f}k)"
    return f"{config.get('cell', '?')} {size}{count}"


def read_run(directory: Path) -> RunCurves:
    """The curves of one run directory, from ``log.jsonl`` and ``metrics.json``.

    Raises:
        DataError: the directory has neither file, or they are unreadable or of an unknown kind.
    """
    directory = Path(directory)
    metrics_path, log_path = directory / METRICS_NAME, directory / LOG_NAME
    if not metrics_path.is_file() and not log_path.is_file():
        raise DataError(f"{directory} is not a training run: it has no {METRICS_NAME} nor {LOG_NAME}")
    metrics: dict[str, Any] = {}
    try:
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        records = read_log(log_path) if log_path.is_file() else []
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the run in {directory}: {exc}") from None
    kind = metrics.get("kind") or ("language_model" if any("ppl" in r for r in records) else "classifier")
    if kind not in _METRICS:
        raise DataError(f"{directory} holds a run of kind {kind!r}, which quasirnn plot does not know")
    run = RunCurves(directory, kind, _label(metrics.get("config", {}), metrics.get("params")))
    run.train = [r for r in records if r.get("split") == "train"]
    run.valid = [r for r in records if r.get("split") == "valid"]
    if not run.valid:  # runs from before log.jsonl: the epoch history of metrics.json
        metric = _METRICS[kind][0]
        for h in metrics.get("history", []):
            value = h.get(f"val_{metric}")
            run.valid.append({"step": h.get("step"), "epoch": h.get("epoch"), "train_time_s": h.get("train_time_s"),
                              metric: value})
    if not run.train and not run.valid:
        raise DataError(f"{directory} has no training or validation records yet")
    return run


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` values (shorter at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _points(records: list[dict[str, Any]], x_key: str, y_key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        x, y = r.get(x_key), r.get(y_key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(y):
            xs.append(x / 60.0 if x_key == "train_time_s" else x)
            ys.append(y)
    return xs, ys


def _train_curve(run: RunCurves, x_key: str, smooth: Optional[int]) -> tuple[list[float], list[float]]:
    """The smoothed training curve: perplexity of the averaged loss, or averaged accuracy."""
    metric = _METRICS[run.kind][0]
    source = "loss" if metric == "ppl" else metric
    xs, ys = _points(run.train, x_key, source)
    ys = _smooth(ys, smooth or max(1, len(ys) // 50))
    if metric == "ppl":
        ys = [math.exp(min(y, 700.0)) for y in ys]
    return xs, ys


def _import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("quasirnn plot needs matplotlib: pip install 'quasirnn[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def run_plot(args: argparse.Namespace) -> int:
    """``quasirnn plot``: writes the figure of the runs' curves to ``--output``.

    Raises:
        DataError: a directory that is not a run. ConfigError: runs of different kinds, no
            matplotlib, an output format matplotlib cannot write, an unwritable output.
    """
    runs = [read_run(Path(d)) for d in args.runs]
    kinds = sorted({run.kind for run in runs})
    if len(kinds) > 1:
        raise ConfigError(f"the runs are of different kinds ({', '.join(kinds)}): plot language models and "
                          f"classifiers separately")
    labels = [run.label for run in runs]
    for run in runs:
        if labels.count(run.label) > 1:
            run.label = f"{run.label} [{run.directory.name}]"
    output = Path(args.output)
    fmt = output.suffix.lstrip(".").lower() or "png"
    plt = _import_pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    if fmt not in FigureCanvasBase.get_supported_filetypes():
        raise ConfigError(f"-o {output}: matplotlib cannot write .{fmt} files; use .png, .pdf or .svg")

    metric, metric_label, log_scale = _METRICS[kinds[0]]
    x_key, x_label = _X_AXES[args.x_axis]
    fig, (ax_train, ax_valid) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for run in runs:
        xs, ys = _train_curve(run, x_key, args.smooth)
        if xs:
            ax_train.plot(xs, ys, label=run.label, linewidth=1.2)
        xs, ys = _points(run.valid, x_key, metric)
        if xs:
            ax_valid.plot(xs, ys, marker="o", markersize=3, label=run.label)
    for ax, title in ((ax_train, f"training {metric_label}"), (ax_valid, f"validation {metric_label}")):
        ax.set_title(title)
        ax.set_xlabel(x_label)
        ax.set_ylabel(metric_label)
        if log_scale:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120)
    plt.close(fig)
    try:
        atomic_write(output, lambda f: f.write(buffer.getvalue()))
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(f"wrote {output} ({len(runs)} run{'s' if len(runs) != 1 else ''}: {', '.join(r.label for r in runs)})")
    return 0
