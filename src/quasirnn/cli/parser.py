"""The argument parser of every ``quasirnn`` command: argparse for the syntax, one line for an error.

argparse prints the whole usage (20 lines for ``lm train``) before a one-line reason; a user who
typed ``--bptt 0`` needs only the reason. :class:`OneLineParser` prints
``quasirnn lm train: error: --bptt must be >= 1, got 0 (see quasirnn lm train --help)`` on stderr
and exits with status 2. Sub-command parsers made from it (``add_subparsers().add_parser``) are
of the same class, so every level of the command line reports errors the same way.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

__all__ = ["USAGE_STATUS", "OneLineParser"]

#: Exit status of a usage error (argparse's and the shell's convention).
USAGE_STATUS = 2

# argparse's "argument --bptt: must be >= 1, got 0" -> "--bptt must be >= 1, got 0"
_ARGUMENT = re.compile(r"^argument ([^:]+): ")


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors are one line on stderr (exit status 2).

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
