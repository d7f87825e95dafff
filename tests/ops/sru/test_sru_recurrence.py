"""sru_recurrence: the numba ("cpu") and vectorised PyTorch ("torch") kernels against the plain-loop
reference, forward and backward, plus gradcheck, opcheck, torch.compile, kernel choice and
input validation."""

from __future__ import annotations

import pytest
import torch
from torch.library import opcheck

from quasirnn.ops import SRU_BACKENDS, sru_recurrence, sru_recurrence_reference
from quasirnn.ops.sru import torch_kernel
from quasirnn.ops.sru import _sru_op

# The Triton SRU kernel is tested in test_triton_sru.py; these override the shared `backend` fixture of tests/ops/conftest.py.
KERNELS = ["cpu", "torch"]

SHAPES = [
    (1, 1, 1),  # T = B = H = 1
    (1, 3, 13),  # a single step, H not a multiple of 8
    (6, 1, 13),  # a single sequence
    (4, 2, 8),  # H a multiple of 8, for contrast
    (5, 3, 300),  # crosses the numba kernel's 256-channel block
]


def _inputs(T, B, H, dtype, highway, with_c0=True):
    """Leaf tensors u, x, v, b, c0 (x None when the highway is a projection, u then 4H wide).
    Random normal values, never zero; v and b of order one so the recurrent terms matter."""
    u = torch.randn(T, B, (3 if highway == "input" else 4) * H, dtype=dtype).requires_grad_()
    x = torch.randn(T, B, H, dtype=dtype).requires_grad_() if highway == "input" else None
    v = torch.randn(2, H, dtype=dtype).requires_grad_()
    b = torch.randn(2, H, dtype=dtype).requires_grad_()
    c0 = torch.randn(B, H, dtype=dtype).requires_grad_() if with_c0 else None
    return u, x, v, b, c0


def _run(backend, u, x, v, b, c0, use_tanh, grads_out, uses=("h", "c", "c_last")):
    """Outputs (h, c, c_last) and the gradients of every leaf (None where the leaf is None) of
    sum(output · upstream gradient) over the outputs in ``uses``."""
    wanted = [t is not None and t.requires_grad for t in (u, x, v, b, c0)]
    leaves = [t for t, w in zip((u, x, v, b, c0), wanted) if w]
    outs = sru_recurrence(u, v, b, c0, x=x, use_tanh=use_tanh, backend=backend)
    loss = sum((o * g).sum() for o, g, name in zip(outs, grads_out, ("h", "c", "c_last")) if name in uses)
    # An input that an output in `uses` does not depend on gets zeros (the reference gives None).
    grads = iter(torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True))
    return outs, [next(grads) if w else None for w in wanted]


def _upstream(T, B, H, dtype):
    return torch.randn(T, B, H, dtype=dtype), torch.randn(T, B, H, dtype=dtype), torch.randn(B, H, dtype=dtype)


def _assert_matches_reference(backend, inputs, use_tanh, tol, uses=("h", "c", "c_last")):
    u, x, v, b, c0 = inputs
    T, B = u.shape[:2]
    H = v.shape[1]
    grads_out = _upstream(T, B, H, u.dtype)
    outs, grads = _run(backend, *inputs, use_tanh, grads_out, uses)
    ref_outs, ref_grads = _run("reference", *inputs, use_tanh, grads_out, uses)
    for name, o, r in zip(("h", "c", "c_last"), outs, ref_outs):
        assert o.shape == r.shape and o.dtype == u.dtype, name
        torch.testing.assert_close(o, r, **tol, msg=lambda m, name=name: f"{name}: {m}")
    for name, g, rg in zip(("u", "x", "v", "b", "c0"), grads, ref_grads):
        if rg is None:
            assert g is None, name
            continue
        assert g is not None and g.shape == rg.shape, name
        torch.testing.assert_close(g, rg, **tol, msg=lambda m, name=name: f"grad of {name}: {m}")


# --------------------------------------------------------------------------- against the reference


@pytest.mark.parametrize("use_tanh", [False, True], ids=["g=id", "g=tanh"])
@pytest.mark.parametrize("highway", ["input", "projected"])
@pytest.mark.parametrize("T,B,H", SHAPES)
@pytest.mark.parametrize("backend", KERNELS)
def test_matches_reference(backend, dtype, tol, T, B, H, highway, use_tanh):
    _assert_matches_reference(backend, _inputs(T, B, H, dtype, highway), use_tanh, tol)


@pytest.mark.parametrize("backend", KERNELS)
def test_many_blocks_and_groups(backend):
    """40 channel blocks: several groups of blocks per thread in the numba kernel. (float64: over
    70 steps with v of order one, float32 rounding alone grows past the float32 tolerance.)"""
    _assert_matches_reference(backend, _inputs(70, 20, 300, torch.float64, "input"), True, dict(rtol=1e-10, atol=1e-10))


@pytest.mark.parametrize("uses", [("h",), ("c_last",), ("c",), ("h", "c_last")], ids="+".join)
@pytest.mark.parametrize("backend", KERNELS)
def test_only_some_outputs_get_gradients(backend, uses):
    """Unused outputs send no gradient (None): every combination must still be exact."""
    _assert_matches_reference(backend, _inputs(5, 2, 7, torch.float64, "input"), False, dict(rtol=1e-12, atol=1e-12), uses)


@pytest.mark.parametrize("backend", KERNELS)
def test_highway_input_without_grad(backend):
    """A highway input that needs no gradient (a model's first layer): its gradient is skipped,
    the others stay exact."""
    u, x, v, b, c0 = _inputs(5, 3, 11, torch.float64, "input")
    x = x.detach()
    _assert_matches_reference(backend, (u, x, v, b, c0), True, dict(rtol=1e-12, atol=1e-12))


@pytest.mark.parametrize("backend", KERNELS)
def test_zero_initial_memory_when_c0_is_none(backend):
    u, x, v, b, _ = _inputs(4, 3, 5, torch.float64, "input", with_c0=False)
    h, c, c_last = sru_recurrence(u, v, b, x=x, backend=backend)
    h0, c0_, _ = sru_recurrence(u, v, b, torch.zeros(3, 5, dtype=torch.float64), x=x, backend=backend)
    torch.testing.assert_close(h, h0, rtol=0, atol=0)
    torch.testing.assert_close(c_last, c0_[-1], rtol=0, atol=0)
    _assert_matches_reference(backend, (u, x, v, b, None), True, dict(rtol=1e-12, atol=1e-12))


def test_reference_is_the_recurrence():
    """Anchor for everything else: the reference follows the SRU equations step by step."""
    T, B, H = 3, 2, 4
    u, x, v, b, c0 = (t.detach() for t in _inputs(T, B, H, torch.float64, "input"))
    xt, F, R = u.split(H, dim=-1)
    c = c0
    for t in range(T):
        f = 1 / (1 + torch.exp(-(F[t] + v[0] * c + b[0])))
        r = 1 / (1 + torch.exp(-(R[t] + v[1] * c + b[1])))
        c = f * c + (1 - f) * xt[t]
        h = r * torch.tanh(c) + (1 - r) * x[t]
    ref_h, ref_c = sru_recurrence_reference(u, v, b, c0, x=x, use_tanh=True)
    torch.testing.assert_close(ref_h[-1], h, rtol=0, atol=1e-15)
    torch.testing.assert_close(ref_c[-1], c, rtol=0, atol=1e-15)
    # without recurrent terms (v None) the gates see only the projection
    no_v_h, _ = sru_recurrence_reference(u, None, b, c0, x=x)
    zero_v_h, _ = sru_recurrence_reference(u, torch.zeros_like(v), b, c0, x=x)
    torch.testing.assert_close(no_v_h, zero_v_h, rtol=0, atol=0)


@pytest.mark.parametrize("backend", KERNELS)
def test_strided_inputs(backend):
    """A batch-major highway input (as with batch_first) and a non-contiguous u/c0 are accepted."""
    T, B, H = 5, 3, 9
    xl = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    u = torch.randn(T, B, 3 * H, dtype=torch.float64, requires_grad=True)
    c0l = torch.randn(H, B, dtype=torch.float64, requires_grad=True)
    v, b = torch.randn(2, 2, H, dtype=torch.float64)
    x, c0 = xl.transpose(0, 1), c0l.t()
    assert not x.is_contiguous() and not c0.is_contiguous()
    _assert_matches_reference(backend, (u, x, v, b, c0), False, dict(rtol=1e-12, atol=1e-12))


# --------------------------------------------------------------------------- gradcheck, opcheck, compile


@pytest.mark.parametrize("use_tanh", [False, True], ids=["g=id", "g=tanh"])
@pytest.mark.parametrize("highway", ["input", "projected"])
@pytest.mark.parametrize("backend", KERNELS)
def test_gradcheck(backend, highway, use_tanh):
    u, x, v, b, c0 = _inputs(4, 2, 5, torch.float64, highway)
    leaves = tuple(t for t in (u, x, v, b, c0) if t is not None)

    def fn(*args):
        it = iter(args)
        uu, xx = next(it), (next(it) if x is not None else None)
        vv, bb, cc0 = next(it), next(it), next(it)
        return sru_recurrence(uu, vv, bb, cc0, x=xx, use_tanh=use_tanh, backend=backend)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", KERNELS)
def test_opcheck(backend):
    u, x, v, b, c0 = _inputs(4, 2, 5, torch.float64, "input")
    opcheck(_sru_op, (u, x, v, b, c0, False, backend))
    u4, _, v, b, c0 = _inputs(3, 2, 5, torch.float32, "projected")
    opcheck(_sru_op, (u4, None, v, b, c0, True, backend))


def test_compiled_matches_eager():
    torch._dynamo.reset()
    T, B, H = 6, 3, 10

    def fn(u, x, v, b, c0):
        h, _, c_last = sru_recurrence(u * 2, v, b, c0, x=x)
        return h.sum(-1), c_last

    # aot_eager: traces the op's fake implementation and registered backward like inductor does,
    # without inductor's code generation (slow here) and its on-disk caches.
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    results = []
    base = _inputs(T, B, H, torch.float32, "input")
    for f in (fn, compiled):
        leaves = [t.detach().clone().requires_grad_() for t in base]
        y, c_last = f(*leaves)
        results.append((y, c_last, torch.autograd.grad((y * y).sum() + c_last.sum(), leaves)))
    torch._dynamo.reset()
    for a, e in zip(results[1], results[0]):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- kernel choice


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_auto_uses_numba_kernel_for_cpu_float(monkeypatch, dtype):
    def forbidden(*args, **kwargs):
        raise AssertionError("auto backend used the pure-PyTorch kernel")

    monkeypatch.setattr(torch_kernel, "sru_forward", forbidden)
    monkeypatch.setattr(torch_kernel, "sru_backward", forbidden)
    u, x, v, b, c0 = _inputs(4, 2, 5, dtype, "input")
    h, _, c_last = sru_recurrence(u, v, b, c0, x=x, backend="auto")
    (h.sum() + c_last.sum()).backward()
    assert u.grad is not None and v.grad is not None


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_bfloat16_is_accumulated_in_float32(backend):
    u, x, v, b, c0 = (t.detach() for t in _inputs(6, 2, 9, torch.float64, "input"))
    low = [t.bfloat16() for t in (u, x, v, b, c0)]
    h, c, c_last = sru_recurrence(low[0], low[2], low[3], low[4], x=low[1], backend=backend)
    assert h.dtype == torch.bfloat16
    ref_h, ref_c = sru_recurrence_reference(*(t.double() for t in (low[0], low[2], low[3], low[4])), x=low[1].double())
    torch.testing.assert_close(h.double(), ref_h, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(c.double(), ref_c, rtol=2e-2, atol=2e-2)
    with pytest.raises(TypeError, match="backend='cpu' supports float32, float64 and bfloat16, got torch.float16"):
        sru_recurrence(*(t.half() for t in (low[0], low[2], low[3], low[4])), x=low[1].half(), backend="cpu")


# --------------------------------------------------------------------------- input validation


def test_bad_inputs_raise_clear_errors():
    T, B, H = 4, 2, 5
    u, x, v, b, c0 = (t.detach() for t in _inputs(T, B, H, torch.float32, "input"))
    cases = [
        (dict(backend="gpu"), ValueError, r"backend must be one of \('auto', 'cpu', 'triton', 'torch', 'reference'\), got 'gpu'"),
        (dict(u=u[0]), ValueError, r"u must have shape \(T, B, 3H\) or \(T, B, 4H\).*got shape \(2, 15\)"),
        (dict(u=u.long()), TypeError, r"u must be a floating-point tensor.*torch.int64"),
        (dict(u=[1.0]), TypeError, r"u must be a torch.Tensor, got list"),
        (dict(v=v[:1]), ValueError, r"v must have shape \(2, H\) = \[v_f; v_r\], got shape \(1, 5\)"),
        (dict(v=None), TypeError, r"v and b must be \(2, H\) tensors; for gates without recurrent terms use forget_mult"),
        (dict(b=b[:, :4]), ValueError, r"b must have shape \(2, 5\), got \(2, 4\)"),
        (dict(b=b.double()), TypeError, r"b has dtype torch.float64 but u has torch.float32"),
        (dict(u=u[..., :12]), ValueError, r"u must have shape \(T, B, 3H\) = \[x~, F, R\] with x given.*expected last dimension 15, got 12"),
        (dict(x=None), ValueError, r"\(T, B, 4H\) = \[x~, F, R, x\] without x.*expected last dimension 20, got 15"),
        (dict(x=x[:, :1]), ValueError, r"x must have shape \(4, 2, 5\), got \(4, 1, 5\)"),
        (dict(c0=c0.t()), ValueError, r"c0 must have shape \(2, 5\), got \(5, 2\)"),
        (dict(u=u[:0], x=x[:0]), ValueError, r"at least one time step"),
    ]
    for change, error, pattern in cases:
        args = dict(u=u, v=v, b=b, c0=c0, x=x, backend="auto")
        args.update(change)
        with pytest.raises(error, match=pattern):
            sru_recurrence(args.pop("u"), args.pop("v"), args.pop("b"), args.pop("c0"), **args)
    assert SRU_BACKENDS == ("auto", "cpu", "triton", "torch", "reference")
