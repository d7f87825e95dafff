"""The QRNN widths of an experiment's configuration: unset ones from the paper's presets, and the
earlier meaning of an int that older checkpoints hold.

A configuration's window field (``window``, ``encoder_window``, ``decoder_window``) is None (the
paper's preset of :mod:`quasirnn.models.presets` for the layer count), an int (every layer, as in
:class:`quasirnn.QRNN`) or one width per layer. A run stores it resolved, one width per layer, so
an int in a saved configuration can only come from a checkpoint written when an int meant the
first layer only (:func:`quasirnn.models.presets.legacy_windows`).

Example::

    >>> from quasirnn.models.presets import AWD_QRNN_WINDOWS
    >>> resolved_windows({"window": None}, 3, {"window": AWD_QRNN_WINDOWS})
    {'window': [2, 1, 1]}
    >>> resolved_windows({"window": 2}, 3, {"window": AWD_QRNN_WINDOWS})
    {'window': [2, 2, 2]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional

from quasirnn._checks import check_qrnn_only
from quasirnn.errors import ConfigError
from quasirnn.models.presets import WindowPattern, legacy_windows
from quasirnn.nn import Windows, resolve_windows
from quasirnn.nn.windows import WindowCountError
from quasirnn.training.config import TrainingConfig

__all__ = ["DROPOUTE_HELP", "EVAL_BATCH_HELP", "WINDOW_HELP", "WindowedConfig", "ZONEOUT_HELP", "resolved_windows"]

#: Help texts of the fields every recurrent experiment has (``{default}``: the command's default).
WINDOW_HELP = "qrnn convolution width of every layer, or a comma list with one width per layer (default: {default})"
ZONEOUT_HELP = "qrnn zoneout probability (default: {default})"
DROPOUTE_HELP = "embedding (word-type) dropout (default: {default})"
EVAL_BATCH_HELP = "validation/test batch size (default: {default})"


def resolved_windows(given: Mapping[str, Optional[Windows]], num_layers: int,
                     presets: Mapping[str, WindowPattern]) -> dict[str, list[int]]:
    """Each window field of ``given`` (name → None, int or list) as one width per layer, None
    taking the field's preset in ``presets``.

    The rule is :func:`quasirnn.nn.resolve_windows`'s, which the models' constructors apply; here
    its errors name the option.

    Raises:
        ConfigError: a width below 1, or a list that is not one width per layer (the message names the option).
    """
    widths = {}
    for name, window in given.items():
        if window is None:
            window = presets[name].widths(num_layers)
        option = f"--{name.replace('_', '-')}"
        try:
            widths[name] = list(resolve_windows(window, num_layers, name))
        except WindowCountError as exc:
            n, layers = exc.count, exc.num_layers
            raise ConfigError(f"{option} lists {n} width{'s' if n != 1 else ''} for {layers} "
                              f"layer{'s' if layers != 1 else ''}; give one width per layer, or one number for all") from None
        except ValueError as exc:
            raise ConfigError(f"{option}: {exc}") from None
    return widths


@dataclass
class WindowedConfig(TrainingConfig):
    """A configuration with QRNN window fields: the names in :attr:`window_presets`, each with the
    paper's preset that None stands for. It needs a ``num_layers`` field.

    :meth:`resolved` stores them as one width per layer; :meth:`upgrade` reads the int windows of
    older checkpoints with their earlier meaning (first layer only). It needs ``cell`` and
    ``zoneout`` fields too.

    Raises:
        ConfigError: zoneout with a cell other than qrnn, a window that is not one width ≥ 1 per
            layer: the rules of the models' constructors (:func:`quasirnn._checks.check_qrnn_only`,
            :func:`quasirnn.nn.resolve_windows`), called here so that a run fails before it starts.
    """

    window_presets: ClassVar[dict[str, WindowPattern]] = {}

    def __post_init__(self) -> None:
        try:
            check_qrnn_only("zoneout", self.zoneout, self.cell)
        except ValueError:
            raise ConfigError(f"--zoneout applies to the qrnn cell only; use 0 with --cell {self.cell}") from None
        given = {name: window for name in self.window_presets if (window := getattr(self, name)) is not None}
        resolved_windows(given, self.num_layers, self.window_presets)

    def resolved(self) -> "WindowedConfig":
        """The configuration with every window as one width per layer (None: the preset).

        Raises:
            ConfigError: a window that is not one width ≥ 1 per layer.
        """
        given = {name: getattr(self, name) for name in self.window_presets}
        return self.replace(**resolved_windows(given, self.num_layers, self.window_presets))

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """Int windows of a checkpoint from before ``window`` meant every layer, as they were read then (the
        first layer's width, the others 1: :func:`~quasirnn.models.presets.legacy_windows`); lists and None stay."""
        saved = super().upgrade(saved)
        for name in cls.window_presets:
            window = saved.get(name)
            if isinstance(window, int) and not isinstance(window, bool):
                saved[name] = list(legacy_windows(window, saved["num_layers"]))
        return saved
