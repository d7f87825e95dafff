"""quasirnn: Quasi-Recurrent Neural Networks for PyTorch.

An RNN that trains like a CNN (Bradbury, Merity, Xiong & Socher 2016, arXiv 1611.01576):
convolutions over time compute every gate in parallel; only a cheap element-wise pooling
recurrence walks the sequence, in its own fused kernel.

The Simple Recurrent Unit (Lei et al. 2017, arXiv 1709.02755) runs on the same machinery:
one projection per layer, then a fused element-wise recurrence kernel.

Public API:
    :class:`QRNN`, :class:`QRNNLayer` — layers (``quasirnn.nn``)
    :class:`SRU`, :class:`SRULayer` — SRU layers, same forward/state contract as ``QRNN``
    :class:`RecurrentState` — the state both return (``QRNNState``: its former name, the same class)
    :func:`forget_mult`, :func:`qrnn_pooling`, :func:`sru_recurrence` — recurrence ops (``quasirnn.ops``)
    :func:`quantize` — int8 weights for CPU inference (``quasirnn.quantize(model.eval(), "int8")``)
    :mod:`quasirnn.onnx` — ONNX export with the recurrences as ONNX ``Scan`` (``pip install "quasirnn[onnx]"``;
    imported on demand: ``import quasirnn.onnx``)
"""

from .nn import QRNN, SRU, QRNNLayer, QRNNState, RecurrentState, SRULayer
from .ops import forget_mult, qrnn_pooling, sru_recurrence
from .quantization import quantize

__version__ = "0.1.0"

__all__ = [
    "QRNN",
    "QRNNLayer",
    "QRNNState",
    "RecurrentState",
    "SRU",
    "SRULayer",
    "forget_mult",
    "qrnn_pooling",
    "quantize",
    "sru_recurrence",
    "__version__",
]
