"""torch.compile(fullgraph=True) through the pooling custom ops, and torch.library.opcheck."""

from __future__ import annotations

import pytest
import torch
from torch.library import opcheck

from quasirnn import QRNN
from quasirnn.ops import GATE_COUNTS, forget_mult


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_forget_mult_matches_eager():
    T, B, H = 6, 3, 10

    def fn(f, z, c0, i, w):
        c = forget_mult(torch.sigmoid(f), torch.tanh(z), c0, i=torch.sigmoid(i))
        return (c * w).sum(-1), c

    compiled = torch.compile(fn, fullgraph=True)
    args = [torch.randn(T, B, H), torch.randn(T, B, H), torch.randn(B, H), torch.randn(T, B, H)]
    w = torch.randn(H)
    grad_out = torch.randn(T, B)
    results = []
    for f in (fn, compiled):
        leaves = [a.clone().requires_grad_() for a in args]
        y, c = f(*leaves, w)
        grads = torch.autograd.grad(y, leaves, grad_out)
        results.append((y, c, grads))
    (y, c, grads), (cy, cc, cgrads) = results
    torch.testing.assert_close(cy, y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cc, c, rtol=1e-5, atol=1e-5)
    for g, cg in zip(grads, cgrads):
        torch.testing.assert_close(cg, g, rtol=1e-5, atol=1e-5)


def test_compiled_qrnn_matches_eager():
    model = QRNN(5, 6, num_layers=2, window=2, pooling="ifo")
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(7, 3, 5)
    c0 = torch.randn(2, 3, 6)
    grad_out = torch.randn(7, 3, 6)
    params = list(model.parameters())
    results = []
    for m in (model, compiled):
        xx = x.clone().requires_grad_()
        out, state = m(xx, c0)
        loss = (out * grad_out).sum() + state.c.square().sum()
        grads = torch.autograd.grad(loss, [xx, *params])
        results.append((out, state, grads))
    (out, state, grads), (cout, cstate, cgrads) = results
    torch.testing.assert_close(cout, out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cstate.c, state.c, rtol=1e-5, atol=1e-5)
    for h, ch in zip(state.inputs, cstate.inputs):
        torch.testing.assert_close(ch, h, rtol=1e-5, atol=1e-5)
    for g, cg in zip(grads, cgrads):
        torch.testing.assert_close(cg, g, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- opcheck

T, B, H = 4, 2, 5


def _forget_mult_args(with_i, backend):
    return (
        torch.sigmoid(torch.randn(T, B, H)).requires_grad_(),
        torch.randn(T, B, H, requires_grad=True),
        torch.randn(B, H, requires_grad=True),
        torch.sigmoid(torch.randn(T, B, H)).requires_grad_() if with_i else None,
        backend,
    )


@pytest.mark.parametrize("with_i", [False, True], ids=["f-pool", "ifo-pool"])
def test_opcheck_forget_mult(backend, with_i):
    opcheck(torch.ops.quasirnn.forget_mult.default, _forget_mult_args(with_i, backend))


@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("with_mask", [False, True], ids=["no-zoneout", "zoneout"])
@pytest.mark.parametrize("pooling", list(GATE_COUNTS))
def test_opcheck_qrnn_pooling(backend, pooling, with_mask, with_bias):
    gates = torch.randn(T, B, GATE_COUNTS[pooling] * H, requires_grad=True)
    c0 = torch.randn(B, H, requires_grad=True)
    mask = torch.bernoulli(torch.full((T, B, H), 0.5)) if with_mask else None
    bias = torch.randn(GATE_COUNTS[pooling] * H, requires_grad=True) if with_bias else None
    opcheck(torch.ops.quasirnn.qrnn_pooling.default, (gates, c0, mask, bias, pooling, backend))
