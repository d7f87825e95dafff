"""Training and validation curves of runs: read from a run directory, drawn on one figure.

A run directory is the ``--out`` of a ``train`` command. The training curve comes from
``log.jsonl`` (:mod:`quasirnn.training.runlog`: one record per step, smoothed over a window of
steps), the validation curve from its validation records, or from ``metrics.json``'s epoch
history for runs written before log.jsonl existed. Language models show perplexity (log scale),
classifiers accuracy, translators the training loss and the validation BLEU; runs of different
kinds cannot share a figure. Each run is labelled by its cell and size, e.g. ``qrnn 3×600 (5.6M)``.
The x axis is training time, steps or epochs (:data:`X_AXES`).

Drawing needs matplotlib (``pip install 'quasirnn[plot]'``).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from quasirnn.checkpoint_file import atomic_write
from quasirnn.errors import ConfigError, DataError
from quasirnn.training.run_state import METRICS_NAME
from quasirnn.training.runlog import LOG_NAME, read_log

__all__ = ["X_AXES", "RunCurves", "draw_curves", "read_run", "read_runs"]


@dataclass(frozen=True)
class _Curves:
    """What the two panels of a run kind show.

    Attributes:
        train, train_label: the training records' key and its axis label.
        valid, valid_label: the validation records' key (``val_<valid>`` in an epoch history) and label.
        log_scale: logarithmic vertical axes.
        exp: the training curve is exp of the averaged ``train`` values (the perplexity of the mean loss).
    """

    train: str
    train_label: str
    valid: str
    valid_label: str
    log_scale: bool = False
    exp: bool = False


#: The curves of each run kind.
_KINDS = {
    "language_model": _Curves("loss", "perplexity", "ppl", "perplexity", log_scale=True, exp=True),
    "classifier": _Curves("accuracy", "accuracy", "accuracy", "accuracy"),
    "translator": _Curves("loss", "loss (nats per character)", "bleu", "BLEU"),
}
#: The horizontal axes (``quasirnn plot --x``): the record key and the axis label.
X_AXES = {"time": ("train_time_s", "training time (minutes)"), "step": ("step", "optimizer step"),
          "epoch": ("epoch", "epoch")}


@dataclass
class RunCurves:
    """What a run directory holds for the figure.

    Attributes:
        directory: the run directory.
        kind: ``"language_model"``, ``"classifier"`` or ``"translator"``.
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
    history = metrics.get("history", [])
    kind = metrics.get("kind") or _kind_of(records, history)
    if kind not in _KINDS:
        raise DataError(f"{directory} holds a run of kind {kind!r}, which quasirnn plot does not know")
    run = RunCurves(directory, kind, _label(metrics.get("config", {}), metrics.get("params")))
    run.train = [r for r in records if r.get("split") == "train"]
    run.valid = [r for r in records if r.get("split") == "valid"]
    if not records:  # runs from before log.jsonl: the epoch history of metrics.json
        curves = _KINDS[kind]
        for h in history:  # translate's own loop wrote train_s and the epoch's train_loss
            point = {"step": h.get("step"), "epoch": h.get("epoch"),
                     "train_time_s": h.get("train_time_s", h.get("train_s"))}
            run.valid.append({**point, curves.valid: h.get(f"val_{curves.valid}")})
            if curves.train == "loss" and "train_loss" in h:
                run.train.append({**point, "loss": h["train_loss"]})
    if not run.train and not run.valid:
        raise DataError(f"{directory} has no training or validation records yet")
    return run


def read_runs(directories: Sequence[Path]) -> list[RunCurves]:
    """The curves of several run directories of one kind, labels made distinct by the directory names.

    Raises:
        DataError: a directory that is not a run (:func:`read_run`). ConfigError: runs of different kinds.
    """
    runs = [read_run(Path(d)) for d in directories]
    kinds = sorted({run.kind for run in runs})
    if len(kinds) > 1:
        raise ConfigError(f"the runs are of different kinds ({', '.join(kinds)}): plot each kind on its own figure")
    labels = [run.label for run in runs]
    for run in runs:
        if labels.count(run.label) > 1:
            run.label = f"{run.label} [{run.directory.name}]"
    return runs


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


def _kind_of(records: list[dict[str, Any]], history: list[dict[str, Any]]) -> str:
    """The run kind that wrote log.jsonl ``records`` or an epoch ``history``, for a metrics.json without ``kind``."""
    for key, kind in (("ppl", "language_model"), ("bleu", "translator")):
        if any(key in r for r in records) or any(f"val_{key}" in h for h in history):
            return kind
    return "classifier"


def _train_curve(run: RunCurves, x_key: str, smooth: Optional[int]) -> tuple[list[float], list[float]]:
    """The smoothed training curve: perplexity of the averaged loss, averaged accuracy or averaged loss."""
    curves = _KINDS[run.kind]
    xs, ys = _points(run.train, x_key, curves.train)
    ys = _smooth(ys, smooth or max(1, len(ys) // 50))
    if curves.exp:
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


def draw_curves(runs: Sequence[RunCurves], output: Path, x_axis: str = "time", smooth: Optional[int] = None) -> None:
    """Writes the figure of ``runs`` (of one kind, :func:`read_runs`) to ``output``, atomically.

    Left panel: the training curve, averaged over ``smooth`` steps (default: 1/50 of each run's
    steps); right panel: the validation results. ``x_axis`` is a key of :data:`X_AXES`; the
    image format follows the suffix of ``output`` (png, pdf, svg, ...).

    Raises:
        ConfigError: no matplotlib, an output format matplotlib cannot write, an unwritable output.
    """
    output = Path(output)
    fmt = output.suffix.lstrip(".").lower() or "png"
    plt = _import_pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    if fmt not in FigureCanvasBase.get_supported_filetypes():
        raise ConfigError(f"-o {output}: matplotlib cannot write .{fmt} files; use .png, .pdf or .svg")

    curves = _KINDS[runs[0].kind]
    x_key, x_label = X_AXES[x_axis]
    fig, (ax_train, ax_valid) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for run in runs:
        xs, ys = _train_curve(run, x_key, smooth)
        if xs:
            ax_train.plot(xs, ys, label=run.label, linewidth=1.2)
        xs, ys = _points(run.valid, x_key, curves.valid)
        if xs:
            ax_valid.plot(xs, ys, marker="o", markersize=3, label=run.label)
    for ax, label, title in ((ax_train, curves.train_label, f"training {curves.train_label}"),
                             (ax_valid, curves.valid_label, f"validation {curves.valid_label}")):
        ax.set_title(title)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        if curves.log_scale:
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
