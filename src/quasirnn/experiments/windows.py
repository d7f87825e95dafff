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
    >>> resolved_windows({"window": 2}, 3, {"window": AWD_QRNN_WINDOWS}), legacy_config({"window": 2}, 3, ["window"])
    ({'window': [2, 2, 2]}, {'window': [2, 1, 1]})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Optional

from quasirnn.errors import ConfigError
from quasirnn.models.presets import WindowPattern, legacy_windows
from quasirnn.nn import Windows, resolve_windows
from quasirnn.training.config import TrainingConfig

__all__ = ["WindowedConfig", "legacy_config", "resolved_windows"]


def resolved_windows(given: Mapping[str, Optional[Windows]], num_layers: int,
                     presets: Mapping[str, WindowPattern]) -> dict[str, list[int]]:
    """Each window field of ``given`` (name → None, int or list) as one width per layer, None
    taking the field's preset in ``presets``.

    Raises:
        ConfigError: a width below 1, or a list that is not one width per layer (the message names the option).
    """
    widths = {}
    for name, window in given.items():
        if window is None:
            window = presets[name].widths(num_layers)
        try:
            widths[name] = list(resolve_windows(window, num_layers, name))
        except ValueError as exc:
            raise ConfigError(f"--{name.replace('_', '-')}: {exc}") from None
    return widths


def legacy_config(saved: dict[str, Any], num_layers: int, names: Iterable[str]) -> dict[str, Any]:
    """``saved`` (a checkpoint's configuration) with the int windows of the earlier meaning (the
    first layer's width, the others 1) as one width per layer; lists and None stay."""
    for name in names:
        window = saved.get(name)
        if isinstance(window, int) and not isinstance(window, bool):
            saved[name] = list(legacy_windows(window, num_layers))
    return saved


@dataclass
class WindowedConfig(TrainingConfig):
    """A configuration with QRNN window fields: the names in :attr:`window_presets`, each with the
    paper's preset that None stands for. It needs a ``num_layers`` field.

    :meth:`resolved` stores them as one width per layer; :meth:`upgrade` reads the int windows of
    older checkpoints with their earlier meaning (first layer only).
    """

    window_presets: ClassVar[dict[str, WindowPattern]] = {}

    def resolved(self) -> "WindowedConfig":
        """The configuration with every window as one width per layer (None: the preset).

        Raises:
            ConfigError: a window that is not one width ≥ 1 per layer.
        """
        given = {name: getattr(self, name) for name in self.window_presets}
        return self.replace(**resolved_windows(given, self.num_layers, self.window_presets))

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """Int windows of a checkpoint from before ``window`` meant every layer, as they were read then."""
        return legacy_config(super().upgrade(saved), saved["num_layers"], cls.window_presets)
