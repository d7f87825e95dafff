"""forget_mult: the fast backends ("cpu" numba kernel, "torch" vectorised kernel) against the
plain-loop reference, forward and backward, plus gradcheck and input validation."""

from __future__ import annotations

import re

import pytest
import torch

from quasirnn.ops import BACKENDS, forget_mult, forget_mult_reference

SHAPES = [
    (1, 1, 1),  # T = B = H = 1
    (1, 1, 7),  # a single step
    (1, 3, 13),
    (6, 1, 13),  # a single sequence
    (4, 2, 8),  # H a multiple of 8, for contrast
    (5, 3, 300),  # crosses the numba kernel's 256-channel block
    (130, 20, 300),  # 40 blocks: several groups of blocks per thread in the numba kernel
]


def _inputs(T, B, H, dtype, with_i, with_c0):
    """Leaf tensors f, z, c0, i (c0/i may be None); f and i in (0, 1), nothing zero."""
    f = torch.sigmoid(torch.randn(T, B, H, dtype=dtype)).requires_grad_()
    z = torch.randn(T, B, H, dtype=dtype).requires_grad_()
    c0 = torch.randn(B, H, dtype=dtype).requires_grad_() if with_c0 else None
    i = torch.sigmoid(torch.randn(T, B, H, dtype=dtype)).requires_grad_() if with_i else None
    return f, z, c0, i


def _run(backend, f, z, c0, i, grad_out):
    """Output and gradients (f, z, c0, i — None where the input is None) for one backend."""
    leaves = [x for x in (f, z, c0, i) if x is not None]
    out = forget_mult(f, z, c0, i=i, backend=backend)
    grads = iter(torch.autograd.grad(out, leaves, grad_out))
    return out, [None if x is None else next(grads) for x in (f, z, c0, i)]


def _assert_matches_reference(backend, f, z, c0, i, tol):
    T, B, H = f.shape
    grad_out = torch.randn(T, B, H, dtype=f.dtype)
    out, grads = _run(backend, f, z, c0, i, grad_out)
    ref, ref_grads = _run("reference", f, z, c0, i, grad_out)
    assert out.shape == (T, B, H) and out.dtype == f.dtype
    torch.testing.assert_close(out, ref, **tol)
    for name, g, rg in zip(("f", "z", "c0", "i"), grads, ref_grads):
        if rg is None:
            continue
        assert g is not None and g.shape == rg.shape, name
        torch.testing.assert_close(g, rg, **tol, msg=lambda m, name=name: f"grad of {name}: {m}")


@pytest.mark.parametrize("with_c0", [False, True], ids=["c0=None", "c0"])
@pytest.mark.parametrize("with_i", [False, True], ids=["f-pool", "ifo-pool"])
@pytest.mark.parametrize("T,B,H", SHAPES)
def test_matches_reference(backend, dtype, tol, T, B, H, with_i, with_c0):
    f, z, c0, i = _inputs(T, B, H, dtype, with_i, with_c0)
    _assert_matches_reference(backend, f, z, c0, i, tol)


def test_reference_is_the_recurrence():
    """Anchor for everything else: the reference follows c_t = f c_{t-1} + (1-f) z (or + i z)."""
    f, z, c0, i = _inputs(4, 2, 3, torch.float64, True, True)
    c, c_i = c0, c0
    for t in range(4):
        c = f[t] * c + (1 - f[t]) * z[t]
        c_i = f[t] * c_i + i[t] * z[t]
    torch.testing.assert_close(forget_mult_reference(f, z, c0)[-1], c, rtol=0, atol=1e-15)
    torch.testing.assert_close(forget_mult_reference(f, z, c0, i=i)[-1], c_i, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- memory layouts


def _laid_out(T, B, H, dtype, kind, gate):
    """A (leaf, view) pair: ``view`` is a (T, B, H) tensor with the given memory layout whose
    gradient lands in ``leaf``."""
    shapes = {
        "contiguous": (T, B, H),
        "batch_major": (B, T, H),  # transpose(0, 1): strided, last dim contiguous
        "channel_slice": (T, B, H + 5),  # [..., 2:2+H]: row stride != H
        "last_dim_strided": (T, B, H, 2),  # [..., 0]: stride(-1) == 2
        "channels_first": (H, T, B),  # permute(1, 2, 0): stride(-1) == T*B
        "broadcast": (T, 1, H),  # expand(T, B, H): stride(1) == 0
    }
    leaf = torch.randn(shapes[kind], dtype=dtype)
    if gate:
        leaf = torch.sigmoid(leaf)
    leaf.requires_grad_()
    view = {
        "contiguous": lambda x: x,
        "batch_major": lambda x: x.transpose(0, 1),
        "channel_slice": lambda x: x[..., 2 : 2 + H],
        "last_dim_strided": lambda x: x[..., 0],
        "channels_first": lambda x: x.permute(1, 2, 0),
        "broadcast": lambda x: x.expand(T, B, H),
    }[kind](leaf)
    assert view.shape == (T, B, H)
    return leaf, view


@pytest.mark.parametrize(
    "kind", ["batch_major", "channel_slice", "last_dim_strided", "channels_first", "broadcast"]
)
@pytest.mark.parametrize("T,B,H", [(5, 3, 13), (3, 2, 300)])
def test_non_contiguous_inputs(backend, dtype, tol, kind, T, B, H):
    (fl, f), (zl, z), (il, i) = (_laid_out(T, B, H, dtype, kind, gate) for gate in (True, False, True))
    c0l = torch.randn(H, B, dtype=dtype, requires_grad=True)
    c0 = c0l.t()  # non-contiguous (B, H)
    assert not (f.is_contiguous() or z.is_contiguous() or c0.is_contiguous())
    grad_out = torch.randn(T, B, H, dtype=dtype)
    leaves = [fl, zl, c0l, il]
    out = forget_mult(f, z, c0, i=i, backend=backend)
    grads = torch.autograd.grad(out, leaves, grad_out)
    ref = forget_mult(f, z, c0, i=i, backend="reference")
    ref_grads = torch.autograd.grad(ref, leaves, grad_out)
    torch.testing.assert_close(out, ref, **tol)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, **tol)


def test_non_contiguous_matches_contiguous_exactly(backend):
    """The kernels read strided views directly; the numbers must not depend on the layout."""
    T, B, H = 4, 3, 9
    f = torch.sigmoid(torch.randn(B, T, H)).transpose(0, 1)
    z = torch.randn(T, B, 2 * H)[..., H:]
    assert not f.is_contiguous() and not z.is_contiguous()
    out = forget_mult(f, z, backend=backend)
    torch.testing.assert_close(out, forget_mult(f.contiguous(), z.contiguous(), backend=backend), rtol=0, atol=0)


# --------------------------------------------------------------------------- autograd details


def test_partial_requires_grad(backend):
    """Only z needs a gradient; f, c0 and i are plain tensors."""
    T, B, H = 5, 2, 7
    f = torch.sigmoid(torch.randn(T, B, H, dtype=torch.float64))
    i = torch.sigmoid(torch.randn(T, B, H, dtype=torch.float64))
    c0 = torch.randn(B, H, dtype=torch.float64)
    z = torch.randn(T, B, H, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(T, B, H, dtype=torch.float64)
    (g,) = torch.autograd.grad(forget_mult(f, z, c0, i=i, backend=backend), z, grad_out)
    (rg,) = torch.autograd.grad(forget_mult(f, z, c0, i=i, backend="reference"), z, grad_out)
    torch.testing.assert_close(g, rg, rtol=1e-12, atol=1e-12)


def test_no_grad_inputs_give_plain_output(backend):
    f = torch.sigmoid(torch.randn(3, 2, 4))
    out = forget_mult(f, torch.randn(3, 2, 4), backend=backend)
    assert out.grad_fn is None and not out.requires_grad


@pytest.mark.parametrize("with_i", [False, True], ids=["f-pool", "ifo-pool"])
def test_gradcheck(backend, with_i):
    f, z, c0, i = _inputs(4, 2, 3, torch.float64, with_i, True)
    if with_i:
        fn = lambda f, z, c0, i: forget_mult(f, z, c0, i=i, backend=backend)  # noqa: E731
        args = (f, z, c0, i)
    else:
        fn = lambda f, z, c0: forget_mult(f, z, c0, backend=backend)  # noqa: E731
        args = (f, z, c0)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-8, rtol=1e-6)


# --------------------------------------------------------------------------- validation


@pytest.fixture
def good():
    T, B, H = 4, 2, 3
    return dict(f=torch.sigmoid(torch.randn(T, B, H)), z=torch.randn(T, B, H), c0=torch.randn(B, H))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_rejects_wrong_ndim(good, backend_name):
    with pytest.raises(ValueError, match=r"f must have shape \(T, B, H\).*got shape \(4, 6\)"):
        forget_mult(good["f"].reshape(4, 6), good["z"].reshape(4, 6), backend=backend_name)
    with pytest.raises(ValueError, match=r"f must have shape \(T, B, H\).*got shape \(1, 4, 2, 3\)"):
        forget_mult(good["f"][None], good["z"][None], backend=backend_name)


def test_rejects_mismatched_z_shape(good):
    with pytest.raises(ValueError, match=r"z must have shape \(4, 2, 3\), got \(4, 2, 4\)"):
        forget_mult(good["f"], torch.randn(4, 2, 4))
    with pytest.raises(ValueError, match=r"z must have shape \(4, 2, 3\), got \(5, 2, 3\)"):
        forget_mult(good["f"], torch.randn(5, 2, 3))


def test_rejects_mismatched_i_shape(good):
    with pytest.raises(ValueError, match=r"i must have shape \(4, 2, 3\), got \(4, 1, 3\)"):
        forget_mult(good["f"], good["z"], i=torch.rand(4, 1, 3))


def test_rejects_wrong_c0_shape(good):
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 3\), got \(1, 2, 3\)"):
        forget_mult(good["f"], good["z"], good["c0"][None])
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 3\), got \(3, 2\)"):
        forget_mult(good["f"], good["z"], good["c0"].t())


@pytest.mark.parametrize("which", ["f", "z", "c0", "i"])
def test_rejects_integer_dtype(good, which):
    args = dict(good, i=torch.rand(4, 2, 3))
    args[which] = torch.ones_like(args[which], dtype=torch.int64)
    with pytest.raises(TypeError, match=rf"{which} must be a floating-point tensor.*int64"):
        forget_mult(args["f"], args["z"], args["c0"], i=args["i"])


@pytest.mark.parametrize("which", ["z", "c0", "i"])
def test_rejects_mixed_dtypes(good, which):
    args = dict(good, i=torch.rand(4, 2, 3))
    args[which] = args[which].double()
    with pytest.raises(TypeError, match=rf"{which} has dtype torch.float64 but f has torch.float32"):
        forget_mult(args["f"], args["z"], args["c0"], i=args["i"])


def test_rejects_non_tensor(good):
    with pytest.raises(TypeError, match=r"z must be a torch.Tensor, got list"):
        forget_mult(good["f"], good["z"].tolist())


def test_rejects_unknown_backend(good):
    with pytest.raises(ValueError, match=re.escape(f"backend must be one of {BACKENDS}, got 'cuda'")):
        forget_mult(good["f"], good["z"], backend="cuda")


def test_cpu_backend_rejects_float16():
    f = torch.sigmoid(torch.randn(3, 1, 4)).half()
    with pytest.raises(TypeError, match=r"backend='cpu' supports float32, float64 and bfloat16, got torch.float16"):
        forget_mult(f, torch.randn(3, 1, 4).half(), backend="cpu")
