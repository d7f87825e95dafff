"""``quasirnn plot RUN_DIR [RUN_DIR ...] -o curves.png``: the command line of
:mod:`quasirnn.training.plots` (training and validation curves of runs on one figure)."""

from __future__ import annotations

import argparse
from pathlib import Path

from quasirnn.training.options import positive_int
from quasirnn.training.plots import X_AXES, draw_curves, read_runs

__all__ = ["add_parser", "run_plot"]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``plot`` on the top-level sub-commands."""
    p = commands.add_parser("plot", help="draw training and validation curves of runs",
                            description="Draw the training and validation curves of one or more runs on one figure "
                                        "(needs matplotlib).")
    p.set_defaults(func=run_plot)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="output directories of training runs")
    p.add_argument("-o", "--output", default="curves.png", metavar="FILE",
                   help="image to write; the format follows the suffix: png, pdf, svg (default: curves.png)")
    p.add_argument("--x", choices=tuple(X_AXES), default="time", dest="x_axis",
                   help="horizontal axis: training time, optimizer steps or epochs (default: time)")
    p.add_argument("--smooth", type=positive_int, default=None, metavar="STEPS",
                   help="average the training curve over this many steps (default: 1/50 of the run's steps)")
    return p


def run_plot(args: argparse.Namespace) -> int:
    """``quasirnn plot``: writes the figure of the runs' curves to ``--output`` and says so.

    Raises:
        DataError: a directory that is not a run. ConfigError: runs of different kinds, no
            matplotlib, an output format matplotlib cannot write, an unwritable output.
    """
    runs = read_runs([Path(d) for d in args.runs])
    output = Path(args.output)
    draw_curves(runs, output, args.x_axis, args.smooth)
    print(f"wrote {output} ({len(runs)} run{'s' if len(runs) != 1 else ''}: {', '.join(r.label for r in runs)})")
    return 0
