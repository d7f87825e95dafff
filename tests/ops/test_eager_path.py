"""In plain eager mode the recurrences skip their custom-op wrappers (quasirnn.ops._common.apply_op):
same values and gradients as the custom ops, which torch.compile / torch.export still see."""

from __future__ import annotations

import torch

from quasirnn.ops import forget_mult, pooling, qrnn_pooling, sru, sru_recurrence


def _grads(out, leaves, seed=0):
    torch.manual_seed(seed)
    loss = sum((o * torch.randn_like(o)).sum() for o in out if o.numel())
    return torch.autograd.grad(loss, leaves)


def test_qrnn_pooling_eager_equals_custom_op():
    torch.manual_seed(0)
    gates = torch.randn(6, 3, 3 * 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(6, 3, 5) > 0.3).double()
    bias = torch.randn(3 * 5, dtype=torch.float64, requires_grad=True)
    eager = qrnn_pooling(gates, c0, "fo", mask, bias=bias)
    op = pooling._qrnn_pooling_op(gates, c0, mask, bias, "fo", "auto")
    for a, b in zip(eager, op):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(_grads(eager, (gates, c0, bias)), _grads(op, (gates, c0, bias))):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)


def test_forget_mult_and_sru_eager_equal_custom_ops():
    torch.manual_seed(1)
    f = torch.rand(5, 2, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    eager, op = forget_mult(f, z, c0), pooling._forget_mult_op(f, z, c0, None, "auto")
    torch.testing.assert_close(eager, op, rtol=0, atol=0)
    for a, b in zip(_grads([eager], (f, z, c0)), _grads([op], (f, z, c0))):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
    u = torch.randn(5, 2, 16, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    eager = sru_recurrence(u, v, b, c0)
    op = sru._sru_op(u, None, v, b, c0, False, "auto")
    for x, y in zip(eager, op):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    for x, y in zip(_grads(eager, (u, v, b, c0)), _grads(op, (u, v, b, c0))):
        torch.testing.assert_close(x, y, rtol=1e-14, atol=1e-14)


def test_inference_builds_no_graph():
    gates = torch.randn(4, 2, 6, requires_grad=True)
    with torch.no_grad():
        h, c, c_last = qrnn_pooling(gates, None, "fo")
    assert h.grad_fn is None and c_last.grad_fn is None
    h, c, c_last = qrnn_pooling(gates.detach(), None, "fo")
    assert h.grad_fn is None
