"""What the experiments' model sections share: the kernel choice (``backend``), the QRNN window
fields, the help of their common fields, and the translation of a model's errors into the words
of the command line.

A model section (``LanguageModelOptions``, ``ClassifierOptions``, ``TranslatorOptions``) has one
field per keyword argument of its model's constructor, named as the constructor names it, and
its experiment builds the model from it. The section checks nothing that the model checks: the
values are consumed, and checked once, by the model's constructor and the layers it builds
(``window`` by :func:`quasirnn.nn.resolve_windows`, ``backend`` by the QRNN and SRU layers), and
:func:`option_errors` turns their ValueError into a :class:`~quasirnn.errors.ConfigError` that
names the option (``window`` → ``--window``).

A window field is None (the paper's widths for the layer count:
:func:`quasirnn.models.paper_windows.layer_windows`), an int (every layer, as in
:class:`quasirnn.QRNN`) or one width per layer. A run stores the widths its model was built with,
one per layer, so an int in a saved configuration can only come from a checkpoint written when an
int meant the first layer only (:meth:`RecurrentModelOptions.upgrade`).

Example::

    >>> from dataclasses import dataclass
    >>> from quasirnn.models.paper_windows import AWD_QRNN_WINDOWS
    >>> @dataclass
    ... class Toy(RecurrentModelOptions):
    ...     num_layers: int = 3
    ...     window: object = None
    ...     window_patterns = {"window": AWD_QRNN_WINDOWS}
    >>> Toy().resolved().window, Toy(window=2).resolved().window
    ([2, 1, 1], [2, 2, 2])
    >>> Toy.upgrade({"window": 3, "num_layers": 3})["window"]  # an old checkpoint: the first layer only
    [3, 1, 1]
    >>> Toy(window=[2, 1]).resolved()
    Traceback (most recent call last):
    quasirnn.errors.ConfigError: --window lists 2 widths for 3 layers; give one width per layer, or one number for all
"""

from __future__ import annotations

import dataclasses
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

from quasirnn._checks import QRNNOnlyError
from quasirnn.errors import ConfigError
from quasirnn.models.paper_windows import WindowPattern, layer_windows
from quasirnn.nn.windows import WindowCountError
from quasirnn.training.config import ModelOptions, inherited
from quasirnn.training.options import EXECUTION

__all__ = ["BACKEND_HELP", "DROPOUTE_HELP", "RecurrentModelOptions", "ZONEOUT_HELP", "option_errors", "window_help"]

#: Help texts of the fields every recurrent experiment's model has (``{default}``: the command's default).
ZONEOUT_HELP = "qrnn zoneout probability (default: {default})"
DROPOUTE_HELP = "embedding (word-type) dropout (default: {default})"
BACKEND_HELP = ("recurrence kernel of the qrnn and sru layers: auto, cpu (numba), triton, torch (pure PyTorch) or "
                "reference; unused by the lstm cell (default: {default})")
_ARGUMENT = re.compile(r"[A-Za-z_]\w*")


def window_help(paper: WindowPattern, what: str = "qrnn convolution width") -> str:
    """The help of a window field whose unset value is ``paper``'s widths."""
    return f"{what} of every layer, or a comma list with one width per layer (default: {paper})"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@contextmanager
def option_errors(options: Any) -> Iterator[None]:
    """Runs the block (a model's construction from the model section ``options``) with its
    ValueError raised as a :class:`~quasirnn.errors.ConfigError` in the command line's words.

    The models name the argument a message is about first (``window[1] must be ...``); when it is a
    field of ``options``, the message names its option: ``--window: window[1] must be ...``. A
    window list of another length (:class:`~quasirnn.nn.windows.WindowCountError`) and a QRNN-only
    option with another cell (:class:`~quasirnn._checks.QRNNOnlyError`) are said in a sentence.

    Example::

        >>> from quasirnn.models import LanguageModel
        >>> from quasirnn.experiments.language_model import LanguageModelOptions
        >>> with option_errors(LanguageModelOptions()):
        ...     LanguageModel(10, 4, 4, num_layers=2, window=[2, 0])
        Traceback (most recent call last):
        quasirnn.errors.ConfigError: --window: window[1] must be an integer >= 1, got 0
    """
    try:
        yield
    except WindowCountError as exc:
        n, layers = exc.count, exc.num_layers
        raise ConfigError(f"{_flag(exc.name)} lists {n} width{'s' if n != 1 else ''} for {layers} "
                          f"layer{'s' if layers != 1 else ''}; give one width per layer, or one number for all") from None
    except QRNNOnlyError as exc:
        raise ConfigError(f"{_flag(exc.name)} applies to the qrnn cell only; use 0 with --cell {exc.cell}") from None
    except ValueError as exc:
        name = _ARGUMENT.match(str(exc))
        fields = {f.name for f in dataclasses.fields(options)}
        raise ConfigError(f"{_flag(name[0])}: {exc}" if name and name[0] in fields else str(exc)) from None


@dataclass
class RecurrentModelOptions(ModelOptions):
    """A model section of QRNN, SRU or LSTM layers: the kernel choice ``backend`` (consumed by the
    QRNN and SRU layers), and the window fields named in :attr:`window_patterns`, each with the
    paper's widths that None stands for (the section needs a ``num_layers`` field), and a run
    stores the widths its model was built with (:meth:`as_built`).
    """

    backend: str = inherited("auto", BACKEND_HELP, metavar="KERNEL", group=EXECUTION)

    window_patterns: ClassVar[dict[str, WindowPattern]] = {}

    def resolved(self) -> "RecurrentModelOptions":
        """The section with every window as the model reads it, one width per layer (None: the paper's;
        :func:`~quasirnn.models.paper_windows.layer_windows`), to compare what two configurations mean.

        Raises:
            ConfigError: a window that is not one width ≥ 1 per layer (the message names the option).
        """
        with option_errors(self):
            return dataclasses.replace(self, **{
                name: list(layer_windows(getattr(self, name), paper, self.num_layers, name))
                for name, paper in self.window_patterns.items()})

    def as_built(self, model: Any) -> "RecurrentModelOptions":
        """The section as ``model`` was built from it, as a run stores it: each window field the
        widths the model reports in its attribute of the plural name (``window`` → ``windows``,
        ``encoder_window`` → ``encoder_windows``), one per layer; None where it has none (an LSTM)."""
        built = {name: getattr(model, f"{name}s", None) for name in self.window_patterns}
        return dataclasses.replace(self, **{name: None if widths is None else list(widths)
                                            for name, widths in built.items()})

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """Int windows of a checkpoint from before ``window`` meant every layer, as they were read
        then: the first layer's width k, the others 1 (``[k, 1, …, 1]``); lists and None stay."""
        for name in cls.window_patterns:
            window, num_layers = saved.get(name), saved.get("num_layers")
            if isinstance(window, int) and not isinstance(window, bool) and isinstance(num_layers, int):
                saved[name] = list(WindowPattern(window, 1).widths(num_layers))
        return saved
