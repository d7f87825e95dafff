"""The forward kernel's non-temporal stores (ops/_cpu/intrinsics.stream, taken for outputs of at
least _cpu.runtime.STREAM_FROM bytes): the same values as the plain stores and the reference, for every
alignment of a block's first element (H not a multiple of a vector) and both float types."""

from __future__ import annotations

import pytest
import torch

from quasirnn.ops import forget_mult, forget_mult_reference, qrnn_pooling, qrnn_pooling_reference
from quasirnn.ops.pooling import cpu_kernel as cpu_pooling
from quasirnn.ops._cpu import runtime as cpu_runtime


@pytest.fixture
def streamed(monkeypatch):
    """Every forward output is written with non-temporal stores; records which kernels ran."""
    monkeypatch.setattr(cpu_runtime, "STREAM_FROM", 0)
    flags = []
    real = cpu_pooling._forward
    monkeypatch.setattr(cpu_pooling, "_forward", lambda *args: flags.append(args[-1]) or real(*args))
    return flags


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T,B,H", [(5, 3, 1), (9, 2, 17), (7, 3, 300), (4, 2, 513)])
def test_streamed_forward_matches_the_reference(streamed, dtype, T, B, H):
    torch.manual_seed(T * H)
    f = torch.rand(T, B, H, dtype=dtype)
    z = torch.randn(T, B, H, dtype=dtype)
    c0 = torch.randn(B, H, dtype=dtype)
    c = forget_mult(f, z, c0, backend="cpu")
    assert streamed == [True], "the streamed kernel did not run"
    torch.testing.assert_close(c, forget_mult_reference(f, z, c0))
    # the whole layer kernel (activations, output gate, c_T) with a view of c that starts mid-vector
    gates = torch.randn(T, B, 3 * H, dtype=dtype)
    h, c, c_last = qrnn_pooling(gates, c0, "fo", backend="cpu")
    h_ref, c_ref = qrnn_pooling_reference(gates, c0, "fo", None)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(c, c_ref, **tol)
    torch.testing.assert_close(h, h_ref, **tol)
    torch.testing.assert_close(c_last, c_ref[-1], **tol)


def test_streamed_and_plain_stores_agree_exactly(streamed, monkeypatch):
    torch.manual_seed(1)
    f, z = torch.rand(33, 4, 260), torch.randn(33, 4, 260)
    fast = forget_mult(f, z, backend="cpu")
    monkeypatch.setattr(cpu_runtime, "STREAM_FROM", 1 << 62)
    plain = forget_mult(f, z, backend="cpu")
    assert streamed == [True, False]
    assert torch.equal(fast, plain)


def test_bfloat16_outputs_are_never_streamed(streamed):
    f = torch.rand(6, 2, 40).bfloat16()
    forget_mult(f, f, backend="cpu")
    assert streamed == [False]
