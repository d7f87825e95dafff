"""``quasirnn plot RUN_DIR [RUN_DIR ...] [-o FILE]``: the command line of
:mod:`quasirnn.training.plots` (training and validation curves of runs on one figure).

Without ``-o`` the figure goes beside the runs, into the first run's directory, as ``curves.png``,
or ``curves-2.png``, ``curves-3.png``… when that name is taken: no existing file is replaced
unless ``-o`` names it.
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

from quasirnn.errors import ConfigError
from quasirnn.training.options import positive_int
from quasirnn.training.plots import X_AXES, draw_curves, read_runs

__all__ = ["add_parser", "new_figure_path", "run_plot"]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``plot`` on the top-level sub-commands."""
    p = commands.add_parser("plot", help="draw training and validation curves of runs",
                            description="Draw the training and validation curves of one or more runs on one figure "
                                        "(needs matplotlib).")
    p.set_defaults(func=run_plot)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="output directories of training runs")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="image to write, replaced if it exists; the format follows the suffix: png, pdf, svg "
                        "(default: curves.png in the first RUN_DIR, or curves-2.png, curves-3.png ... when taken)")
    p.add_argument("--x", choices=tuple(X_AXES), default="time", dest="x_axis",
                   help="horizontal axis: training time, optimizer steps or epochs (default: time)")
    p.add_argument("--smooth", type=positive_int, default=None, metavar="STEPS",
                   help="average the training curve over this many steps (default: 1/50 of the run's steps)")
    return p


def run_plot(args: argparse.Namespace) -> int:
    """``quasirnn plot``: writes the figure of the runs' curves to ``--output`` (default: a free name in the
    first run's directory, :func:`new_figure_path`) and says so.

    Raises:
        DataError: a directory that is not a run. ConfigError: runs of different kinds, no
            matplotlib, an output format matplotlib cannot write, an unwritable output.
    """
    runs = read_runs([Path(d) for d in args.runs])
    output = Path(args.output) if args.output is not None else new_figure_path(runs[0].directory)
    try:
        draw_curves(runs, output, args.x_axis, args.smooth)
    except BaseException:
        if args.output is None:  # the empty file that reserved the name
            output.unlink(missing_ok=True)
        raise
    print(f"wrote {output} ({len(runs)} run{'s' if len(runs) != 1 else ''}: {', '.join(r.label for r in runs)})")
    return 0


def new_figure_path(directory: Path) -> Path:
    """``directory/curves.png``, else the first of ``curves-2.png``, ``curves-3.png``… that does not exist,
    reserved by creating it empty (exclusively: a file that appears meanwhile is never replaced).

    Raises:
        ConfigError: the directory is not writable.

    Example::

        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> new_figure_path(d).name, new_figure_path(d).name
        ('curves.png', 'curves-2.png')
    """
    for n in itertools.count(1):
        path = Path(directory) / ("curves.png" if n == 1 else f"curves-{n}.png")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot write the figure to {directory}: {exc.strerror or exc}; "
                              f"give -o FILE elsewhere") from None
        return path
