"""Entry point of the ``quasirnn`` command: argument parsing and error reporting.

Errors a user can fix (:class:`quasirnn.errors.QuasirnnError`) are printed as one line,
``quasirnn: error: <message>``, on stderr with exit status 2 and no traceback; usage errors
are one line too (``quasirnn lm train: error: --bptt must be >= 1, got 0 (see quasirnn lm train
--help)``, :class:`OneLineParser`), exit status 2, and an unknown option is reported by the
sub-command it was given to, after that sub-command's usage line, with the closest option it has.

Exit statuses: 0 success; 1 some input lines of ``classify predict`` / ``translate translate``
failed (the others were processed); 2 a usage or user-facing error; 130 Ctrl-C (a training run
saves, evaluates and reports first); 143 SIGTERM stopped a training run (checkpoint saved).
"""

from __future__ import annotations

import argparse
import difflib
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

    def parse_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                   namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:
        """argparse's ``parse_args``, except that arguments no parser knows are reported by the
        sub-command they were given to (:meth:`unrecognized`), not by the top-level command."""
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen_command(namespace).unrecognized(extras)
        return namespace

    def unrecognized(self, extras: Sequence[str]) -> NoReturn:
        """Prints this command's usage line, then ``PROG: error: unrecognized arguments: …; did you
        mean --closest? (see PROG --help)`` on stderr, and exits with status 2.

        Example::

            >>> import contextlib, io
            >>> p = OneLineParser(prog="demo")
            >>> _ = p.add_argument("--lr", type=float)
            >>> err = io.StringIO()
            >>> with contextlib.redirect_stderr(err):
            ...     try:
            ...         p.parse_args(["--lrr", "1"])
            ...     except SystemExit as exc:
            ...         print(exc.code)
            2
            >>> print(err.getvalue(), end="")
            usage: demo [-h] [--lr LR]
            demo: error: unrecognized arguments: --lrr 1; did you mean --lr? (see demo --help)
        """
        options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
        guesses = []
        for arg in extras:
            if arg.startswith("-"):
                close = difflib.get_close_matches(arg.split("=")[0], options, n=1, cutoff=0.75)
                guesses += [g for g in close if g not in guesses]
        hint = f"; did you mean {' or '.join(guesses)}?" if guesses else ""
        sys.stdout.flush()
        self.exit(USAGE_STATUS, f"{self._usage_line()}\n{self.prog}: error: unrecognized arguments: "
                                f"{' '.join(extras)}{hint} (see {self.prog} --help)\n")

    def _usage_line(self) -> str:
        """argparse's usage when it fits on one line, else ``usage: PROG [OPTION ...]`` with the
        required options and the positional arguments."""
        usage = self.format_usage().strip()
        if "\n" not in usage and len(usage) <= 100:
            return usage
        parts = [f"usage: {self.prog}"]
        for action in self._actions:
            if action.required and action.option_strings:
                parts.append(f"{action.option_strings[0]} {action.metavar or action.dest.upper()}")
        parts.append("[OPTION ...]")
        for action in self._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                name = action.metavar or action.dest
                parts.append({"+": f"{name} [{name} ...]", "*": f"[{name} ...]", "?": f"[{name}]"}.get(action.nargs, name))
        return " ".join(parts)

    def _chosen_command(self, namespace: argparse.Namespace) -> "OneLineParser":
        """The parser of the sub-command ``namespace`` was parsed for (e.g. that of ``lm train``)."""
        parser = self
        while True:
            commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = getattr(namespace, commands[0].dest, None) if commands else None
            if chosen not in (commands[0].choices if commands else {}):
                return parser
            parser = commands[0].choices[chosen]

    def parse_known_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                         namespace: Optional[argparse.Namespace] = None) -> tuple[argparse.Namespace, list[str]]:
        """argparse's ``parse_known_args``, remembering the arguments for :meth:`error`."""
        self._arguments = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """Prints ``PROG: error: MESSAGE (see PROG --help)`` on stderr and exits with status 2; a missing
        required option next to an unknown one (``--chekpoint x``) is reported as the unknown one."""
        if message.startswith("the following arguments are required"):
            known = [o for action in self._actions for o in action.option_strings]
            unknown = [a for a in getattr(self, "_arguments", ()) if a.startswith("--") and a != "--"
                       and not any(o.startswith(a.split("=")[0]) for o in known)]  # abbreviations are known
            if unknown:
                self.unrecognized(unknown)
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
