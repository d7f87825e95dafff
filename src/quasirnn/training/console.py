"""What a training run shows on the terminal: log lines on stdout and the epoch's progress bar on stderr.

Only rank 0 of a distributed run shows anything; the other ranks get silent instances.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["Log", "epoch_bar"]


class Log:
    """Prints progress lines on stdout (flushed, so logs interleave correctly in CI).

    Args:
        bar_active: a progress bar is on screen (lines go through ``tqdm.write`` to keep it intact).
        enabled: False prints nothing (ranks other than 0).
    """

    def __init__(self, bar_active: bool, enabled: bool = True) -> None:
        self.bar_active = bar_active
        self.enabled = enabled

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar_active:
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)


def epoch_bar(total: int, initial: int, epoch: int, epochs: int, show: bool) -> tqdm:
    """The progress bar of one epoch (on stderr, removed when the epoch ends): ``epoch N/EPOCHS``."""
    return tqdm(total=total, initial=initial, disable=not show, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                file=sys.stderr, dynamic_ncols=True, leave=False)
