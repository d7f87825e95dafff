"""Entry point of the ``quasirnn`` command: argument parsing and error reporting.

Errors a user can fix (:class:`quasirnn.errors.QuasirnnError`) are printed as one line,
``quasirnn: error: <message>``, on stderr with exit status 2 and no traceback; argparse's
own usage errors look and exit the same way.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from quasirnn.cli import classify, lm, plot, translate
from quasirnn.errors import QuasirnnError

__all__ = ["build_parser", "main"]

PROG = "quasirnn"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``quasirnn`` with its sub-commands (``lm train|eval``, ``classify train|eval|predict``,
    ``translate train|eval|translate``, ``plot``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Quasi-Recurrent Neural Networks (Bradbury et al. 2016): train and evaluate the paper's models.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    lm.add_parser(commands)
    classify.add_parser(commands)
    translate.add_parser(commands)
    plot.add_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``quasirnn`` with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on a user-facing error (message on stderr),
        130 when interrupted outside a training loop.
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
