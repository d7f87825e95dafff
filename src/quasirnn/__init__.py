"""quasirnn: Quasi-Recurrent Neural Networks for PyTorch.

An RNN that trains like a CNN (Bradbury, Merity, Xiong & Socher 2016, arXiv 1611.01576):
convolutions over time compute every gate in parallel; only a cheap element-wise pooling
recurrence walks the sequence, in its own fused kernel.

Public API:
    :class:`QRNN`, :class:`QRNNLayer`, :class:`QRNNState` — layers (``quasirnn.nn``)
    :func:`forget_mult`, :func:`qrnn_pooling` — pooling ops (``quasirnn.ops``)
"""

from .nn import QRNN, QRNNLayer, QRNNState
from .ops import forget_mult, qrnn_pooling

__version__ = "0.1.0"

__all__ = ["QRNN", "QRNNLayer", "QRNNState", "forget_mult", "qrnn_pooling", "__version__"]
