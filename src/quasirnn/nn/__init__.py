"""Layers (``nn.Module``s) built on the recurrence ops: :class:`QRNN`, :class:`QRNNLayer`,
:class:`SRU`, :class:`SRULayer`."""

from .qrnn import QRNN, QRNNState
from .qrnn_layer import QRNNLayer
from .sru import SRU, SRULayer

__all__ = ["QRNN", "QRNNLayer", "QRNNState", "SRU", "SRULayer"]
