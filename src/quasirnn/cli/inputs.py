"""The texts of ``classify predict`` and ``translate translate``: from the arguments, or one a line from stdin.

Both commands take their texts as arguments; no text, or ``-``, reads standard input, one text
per line (``-`` among other texts reads stdin at that place). A text the command cannot use (an
empty line, a review without a word) is an error for that text only: :func:`report_failures`
prints one line per failed text on stderr, naming it, the others are still processed, and the
command then exits with status :data:`PARTIAL_FAILURE_STATUS`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, TextIO

__all__ = ["PARTIAL_FAILURE_STATUS", "STDIN", "InputText", "read_texts", "report_failures"]

#: The argument that stands for standard input.
STDIN = "-"
#: Exit status when some texts failed and the others were processed.
PARTIAL_FAILURE_STATUS = 1


@dataclass(frozen=True)
class InputText:
    """One input text and where it came from.

    Attributes:
        text: the text, without its line ending.
        where: how messages name it: ``"line 3"`` (stdin) or ``"text 2"`` (the arguments).
    """

    text: str
    where: str


def read_texts(arguments: Sequence[str], stdin: Optional[TextIO] = None) -> list[InputText]:
    """The texts of the command line: ``arguments``, with ``-`` (or no argument at all) read as the lines of ``stdin``.

    Args:
        arguments: the positional texts.
        stdin: where ``-`` reads (default: ``sys.stdin``); each line is one text, its ``\\r\\n`` or ``\\n`` removed.

    Example::

        >>> import io
        >>> [t.where for t in read_texts(["Gut.", "-"], io.StringIO("a\\nb\\n"))]
        ['text 1', 'line 1', 'line 2']
        >>> read_texts([], io.StringIO("Ein Hund.\\n"))[0].text
        'Ein Hund.'
    """
    stdin = sys.stdin if stdin is None else stdin
    texts: list[InputText] = []
    for i, argument in enumerate(arguments or [STDIN]):
        if argument == STDIN:
            texts.extend(InputText(line.rstrip("\r\n"), f"line {n}") for n, line in enumerate(stdin, start=1))
        else:
            texts.append(InputText(argument, f"text {i + 1}"))
    return texts


def report_failures(prog: str, texts: Iterable[InputText], problem: Callable[[str], Optional[str]],
                    file: Optional[TextIO] = None) -> list[Optional[str]]:
    """Checks every text with ``problem`` (None = usable, else why not); prints one line per failed text.

    Each failure is ``PROG: error: line 3: the line is empty`` on ``file`` (default ``sys.stderr``).

    Returns:
        One entry per text: None when it is usable, else the reason.

    Example::

        >>> import io
        >>> err = io.StringIO()
        >>> report_failures("demo", [InputText("a", "line 1"), InputText("", "line 2")],
        ...                 lambda t: None if t.strip() else "the line is empty", err)
        [None, 'the line is empty']
        >>> err.getvalue()
        'demo: error: line 2: the line is empty\\n'
    """
    file = sys.stderr if file is None else file
    reasons = []
    for item in texts:
        reason = problem(item.text)
        if reason is not None:
            print(f"{prog}: error: {item.where}: {reason}", file=file, flush=True)
        reasons.append(reason)
    return reasons
