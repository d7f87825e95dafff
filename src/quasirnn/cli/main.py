"""Entry point of the ``quasirnn`` command: argument parsing and error reporting.

Errors a user can fix (:class:`quasirnn.errors.QuasirnnError`) are printed as one line,
``quasirnn: error: <message>``, on stderr with exit status 2 and no traceback; usage errors
are one line too (``quasirnn lm train: error: --bptt must be >= 1, got 0 (see quasirnn lm train
--help)``, :class:`quasirnn.cli.parser.OneLineParser`), exit status 2.

Exit statuses: 0 success; 1 some input lines of ``classify predict`` / ``translate translate``
failed (the others were processed); 2 a usage or user-facing error; 130 Ctrl-C (a training run
saves, evaluates and reports first); 143 SIGTERM stopped a training run (checkpoint saved).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from typing import Optional, Sequence

from quasirnn.cli import classify, lm, plot, translate
from quasirnn.cli.parser import OneLineParser
from quasirnn.errors import QuasirnnError

__all__ = ["build_parser", "main", "package_version"]

PROG = "quasirnn"


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else ``quasirnn.__version__``."""
    try:
        return importlib.metadata.version("quasirnn")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        import quasirnn

        return quasirnn.__version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``quasirnn`` with its sub-commands (``lm train|eval``, ``classify train|eval|predict``,
    ``translate train|eval|translate``, ``plot``)."""
    parser = OneLineParser(
        prog=PROG,
        description="Quasi-Recurrent Neural Networks (Bradbury et al. 2016) and SRU (Lei et al. 2017): train and "
                    "evaluate the paper's models.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    lm.add_parser(commands)
    classify.add_parser(commands)
    translate.add_parser(commands)
    plot.add_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``quasirnn`` with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status (see the module docstring): 0 on success, 1 when some input lines failed,
        2 on a user-facing error (message on stderr), 130 after Ctrl-C, 143 after SIGTERM.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except QuasirnnError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
