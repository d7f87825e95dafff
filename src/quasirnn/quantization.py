"""int8 inference on CPUs: :func:`quantize` gives a model int8 weights and dynamically quantised activations."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from quasirnn.models.softmax import AdaptiveSoftmax

__all__ = ["SCHEMES", "Int8Linear", "quantize"]

#: The schemes :func:`quantize` knows.
SCHEMES = ("int8",)


class Int8Linear(torch.ao.nn.quantized.dynamic.Linear):
    """``torch.ao``'s dynamically quantised ``Linear`` (int8 weight, each input quantised with its own
    range), taking what ``nn.Linear`` takes: an input (..., in_features) float32, a single vector
    (in_features,) included (step-by-step decoding scores one word's features so), to an output
    (..., out_features) float32.

    Example::

        >>> lin = quantize(torch.nn.Linear(4, 3).eval(), "int8")
        >>> lin(torch.randn(4)).shape, lin(torch.randn(5, 2, 4)).shape
        (torch.Size([3]), torch.Size([5, 2, 3]))
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (..., in_features) → (..., out_features); the quantised kernel itself needs ≥ 2 dimensions."""
        return super().forward(x[None])[0] if x.dim() == 1 else super().forward(x)


def quantize(model: nn.Module, scheme: str = "int8") -> nn.Module:
    r"""A copy of ``model`` for CPU inference whose ``nn.Linear`` modules hold int8 weights.

    Every ``nn.Linear`` becomes an :class:`Int8Linear` (``torch.ao.nn.quantized.dynamic.Linear``):
    its weight is rounded once to int8 (one scale for the matrix), and each call quantises its input
    to uint8 with a scale from that input's own range, multiplies in int32 (fbgemm) and returns
    float32. In a :class:`~quasirnn.QRNN` or :class:`~quasirnn.SRU` these are the gate projections
    (QRNN paper eq. 1, the masked convolution W [x_{t-k+1}; …; x_t]; SRU paper eq. 1–3, W x_t), the
    part of the work that grows with H²; the recurrences (pooling, eq. 3–5) stay in float32. In the
    package's models the output layers are ``nn.Linear`` too and are quantised
    (:class:`~quasirnn.models.LanguageModel`'s decoder, 2.3× faster alone at 700 × 200 → 10,000;
    the classifier's and the translator's output and attention projections, the untied adaptive
    softmax's head and tails). A tied :class:`~quasirnn.models.softmax.AdaptiveSoftmax` scores
    through int8 copies of the embedding's rows (its :attr:`cluster_scorers`, one per cluster, and
    the word biases): on the default PTB model (one thread) int8 generation took 1.11 ms a word
    against 1.81 with the float tied softmax (A/B in one process), and ``lm eval`` 7.7 s against
    8.2 s (runs alternated) at test perplexity 94.70 against 94.65 (float32: 94.56). The
    embeddings themselves and ``nn.LSTM`` stay float32 (``quantize_dynamic({nn.LSTM})`` measured
    1.0× in issue 34, 1.3–1.6× in benchmarks/int8_speed.py on a loaded machine: not settled).

    Measured (benchmarks/int8_speed.py, BENCHMARKS.md) on a 2-core AMD EPYC (AVX2, no VNNI) shared
    with other jobs, a 2-layer QRNN or SRU at (T, B, H) = (512, 8, 320) and (256, 32, 512) ran
    1.4–1.9× faster (issue 34, quieter: 2.3–3.2×), its output moved by a relative error of 2–3e-2,
    and a small PTB QRNN's test perplexity by +0.03 % (391.58 → 391.68). torchao's
    ``Int8DynamicActivationInt8WeightConfig`` (torchao 0.18, the successor of
    ``torch.ao.quantization``) was measured too (``int8_speed.py --torchao``): on this CPU its int8
    matrix product is a fallback 8–30× slower than float32, eager or under ``torch.compile``, so
    this uses ``torch.ao.quantization.quantize_dynamic``.

    The result is for inference only: the quantised modules have no gradients. It saves as any
    module (``torch.save(q.state_dict(), f)``) and loads into a model built and quantised the
    same way (``quantize(build(), "int8").load_state_dict(torch.load(f))``).

    Args:
        model: a float32 module on the CPU, in eval mode (``model.eval()``). It is not changed.
        scheme: ``"int8"``, the one scheme (:data:`SCHEMES`).

    Returns:
        The quantised copy, in eval mode. Inputs and outputs keep their shapes and stay float32,
        e.g. (T, B, N) in and (T, B, H) out for a QRNN.

    Raises:
        ValueError: a scheme not in :data:`SCHEMES`; a model in training mode; parameters not
            float32 on the CPU.

    Example::

        >>> import torch, quasirnn
        >>> rnn = quasirnn.QRNN(16, 32, num_layers=2).eval()
        >>> q = quasirnn.quantize(rnn, "int8")
        >>> type(q.layers[0].linear).__name__
        'Int8Linear'
        >>> x = torch.randn(10, 4, 16)
        >>> y, y8 = rnn(x)[0], q(x)[0]
        >>> y8.shape, bool((y8 - y).norm() / y.norm() < 0.05)
        (torch.Size([10, 4, 32]), True)
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(map(repr, SCHEMES))}, got {scheme!r}")
    if model.training:
        raise ValueError("quantize makes an inference-only model: call model.eval() first (int8 has no training)")
    for name, p in model.named_parameters():
        if p.device.type != "cpu" or p.dtype != torch.float32:
            raise ValueError(f"int8 runs float32 CPU models: parameter {name!r} is {p.dtype} on {p.device}")
    quantized = _int8_linears(model)
    for module in quantized.modules():
        if isinstance(module, AdaptiveSoftmax) and module.tied:
            module.cluster_scorers = nn.ModuleList(_int8_linears(linear) for linear in module.cluster_linears())
    return quantized


def _int8_linears(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` (``model`` itself included) an :class:`Int8Linear`."""
    with warnings.catch_warnings():  # torch.ao.quantization's notice that torchao succeeds it
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per", UserWarning)
        # in a container: quantize_dynamic swaps children only, and ``model`` may be an nn.Linear itself
        container = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(model), {nn.Linear: torch.ao.quantization.default_dynamic_qconfig}, dtype=torch.qint8,
            mapping={nn.Linear: Int8Linear})
    return container[0]
