"""In plain eager mode the recurrences skip their custom-op wrappers (quasirnn.ops.eager.apply_op):
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


def test_zero_memory_is_shared_in_eager_mode_and_never_written():
    """Without c0 the recurrences start from zeros that small eager CPU calls share (one tensor per
    shape and dtype); forward and backward leave them zero, and results equal an explicit c0 = 0."""
    from quasirnn.ops.inputs import zero_memory

    like = torch.randn(3, 2, 4)
    assert zero_memory(like, 2, 4) is zero_memory(like, 2, 4)
    assert zero_memory(like, 2, 4) is not zero_memory(like.double(), 2, 4)
    assert zero_memory(like, 64, 1024) is not zero_memory(like, 64, 1024)  # 256 KiB: a new one each call
    shared = zero_memory(like, 2, 4)
    for backend in ("auto", "torch"):
        gates = torch.randn(5, 2, 12, requires_grad=True)
        out = qrnn_pooling(gates, None, "fo", backend=backend)
        grads = _grads(out, (gates,))
        explicit = torch.zeros(2, 4, requires_grad=True)
        out0 = qrnn_pooling(gates, explicit, "fo", backend=backend)
        for a, b in zip(out, out0):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(grads[0], _grads(out0, (gates,))[0], rtol=0, atol=0)
        assert all(o.data_ptr() != shared.data_ptr() for o in out)
    u = torch.randn(5, 2, 16, requires_grad=True)
    h, c, c_last = sru_recurrence(u, torch.randn(2, 4), torch.randn(2, 4))
    _grads((h, c, c_last), (u,))
    assert torch.count_nonzero(shared) == 0 and shared.grad_fn is None and not shared.requires_grad


def test_zero_memory_first_made_under_inference_mode_still_serves_autograd():
    """A layer first run under inference_mode (streaming, generation) and then trained: the shared
    zeros made in the first call must not be an inference tensor, which autograd refuses to save."""
    import quasirnn

    for module in (quasirnn.QRNN(4, 8, 2), quasirnn.SRU(4, 8, 2)):
        x = torch.randn(5, 3, 4)
        with torch.inference_mode():
            expected = module(x)[0]
        y = module(x)[0]
        y.sum().backward()
        torch.testing.assert_close(y.detach(), expected, rtol=0, atol=0)
        assert all(p.grad is not None for p in module.parameters())


def test_zero_memory_under_compile_is_a_new_tensor():
    from quasirnn.ops.inputs import zero_memory

    @torch.compile(backend="eager", fullgraph=True)
    def fresh(x):
        return zero_memory(x, 2, 4)

    like = torch.randn(3, 2, 4)
    a = fresh(like)
    assert a is not zero_memory(like, 2, 4) and torch.count_nonzero(a) == 0


def test_no_time_steps_is_a_clear_error_on_every_backend():
    import pytest

    for backend in ("auto", "torch", "reference"):
        with pytest.raises(ValueError, match=r"gates must have at least one time step \(T >= 1\)"):
            qrnn_pooling(torch.randn(0, 2, 12), None, "fo", backend=backend)
        with pytest.raises(ValueError, match=r"f must have at least one time step \(T >= 1\)"):
            forget_mult(torch.rand(0, 2, 4), torch.randn(0, 2, 4), backend=backend)
