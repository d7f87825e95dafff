"""Layers (``nn.Module``s) built on the recurrence ops: :class:`QRNN`, :class:`QRNNLayer`,
:class:`SRU`, :class:`SRULayer`;
:func:`resolve_windows` gives the one meaning of a stack's ``window``."""

from .qrnn import QRNN, QRNNState, RecurrentState
from .qrnn_layer import QRNNLayer
from .sru import SRU, SRULayer
from .windows import Windows, resolve_windows

__all__ = ["QRNN", "QRNNLayer", "QRNNState", "RecurrentState", "SRU", "SRULayer", "Windows", "resolve_windows"]
