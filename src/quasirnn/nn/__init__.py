"""Layers (``nn.Module``s) built on the pooling ops: :class:`QRNN`, :class:`QRNNLayer`."""

from .qrnn import QRNN, QRNNState
from .qrnn_layer import QRNNLayer

__all__ = ["QRNN", "QRNNLayer", "QRNNState"]
