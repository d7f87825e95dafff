"""Entry point of the ``quasirnn`` command: argument parsing and error reporting.

Errors a user can fix (:class:`quasirnn.errors.QuasirnnError`) are printed as one line,
``quasirnn: error: <message>``, on stderr with exit status 2 and no traceback; usage errors
are one line too (``quasirnn lm train: error: --bptt must be >= 1, got 0 (see quasirnn lm train
--help)``, :class:`OneLineParser`), exit status 2.

Exit statuses: 0 success; 1 some input lines of ``classify predict`` / ``translate translate``
failed (the others were processed); 2 a usage or user-facing error; 130 Ctrl-C (a training run
saves, evaluates and reports first); 143 SIGTERM stopped a training run (checkpoint saved).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from typing import NoReturn, Optional, Sequence

from quasirnn.cli import classify, lm, plot, translate
from quasirnn.errors import QuasirnnError

__all__ = ["USAGE_STATUS", "OneLineParser", "build_parser", "main", "package_version"]

PROG = "quasirnn"
#: Exit status of a usage error (argparse's and the shell's convention).
USAGE_STATUS = 2
# argparse's "argument --bptt: must be >= 1, got 0" -> "--bptt must be >= 1, got 0"
_ARGUMENT = re.compile(r"^argument ([^:]+): ")


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors are one line on stderr (exit status 2).

    argparse prints the whole usage (20 lines for ``lm train``) before a one-line reason; a user who
    typed ``--bptt 0`` needs only the reason. Sub-command parsers made from it
    (``add_subparsers().add_parser``) are of the same class, so every level reports errors the same way.

    Example::

        >>> p = OneLineParser(prog="demo")
        >>> _ = p.add_argument("--n", type=int)
        >>> p.parse_args(["--n", "3"]).n
        3
    """

    def error(self, message: str) -> NoReturn:
        """Prints ``PROG: error: MESSAGE (see PROG --help)`` on stderr and exits with status 2."""
        match = _ARGUMENT.match(message)
        if match:
            rest = message[match.end():]
            message = f"{match.group(1)}{' ' if rest.startswith('must ') else ': '}{rest}"
        self.exit(USAGE_STATUS, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """argparse's exit, flushing stdout first (``--help`` and ``--version`` print there)."""
        sys.stdout.flush()
        super().exit(status, message)


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
        return USAGE_STATUS
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
