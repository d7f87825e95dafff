"""The Triton SRU kernel against the plain-loop reference, forward and backward: both highway
layouts, g = identity or tanh, some outputs unused, 16-bit inputs, the layer on top, gradcheck.
Runs on CUDA where there is a GPU, otherwise on CPU tensors in Triton's interpreter."""

from __future__ import annotations

import pytest
import torch

from quasirnn import SRU
from quasirnn.ops import sru_recurrence
from quasirnn.ops import triton_runtime

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not triton_runtime.usable_on(DEVICE), reason="needs triton, and a GPU or TRITON_INTERPRET=1")


def _inputs(T, B, H, dtype, highway):
    """Random u (3H with a separate highway x, or 4H), v, b, c0, all requiring gradients."""
    def leaf(*shape):
        return torch.randn(*shape, dtype=dtype, device=DEVICE).requires_grad_()

    u = leaf(T, B, (3 if highway == "input" else 4) * H)
    x = leaf(T, B, H) if highway == "input" else None
    return u, x, leaf(2, H), leaf(2, H), leaf(B, H)


def _outputs_and_grads(backend, u, x, v, b, c0, use_tanh, upstream, uses=("h", "c", "c_last")):
    h, c, c_last = sru_recurrence(u, v, b, c0, x=x, use_tanh=use_tanh, backend=backend)
    outs = dict(h=h, c=c, c_last=c_last)
    loss = sum((outs[k].double() * upstream[k]).sum() for k in uses)
    leaves = [t for t in (u, x, v, b, c0) if t is not None]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)  # x is unused when only c is
    return (h, c, c_last), tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves))


@pytest.mark.parametrize("use_tanh", [False, True], ids=["identity", "tanh"])
@pytest.mark.parametrize("highway", ["input", "projection"])
@pytest.mark.parametrize("T,B,H", [(1, 1, 3), (13, 2, 37), (17, 3, 8)])
def test_matches_reference_in_float64(T, B, H, highway, use_tanh):
    """Uneven tiles of time (T not a multiple of 8) and channels (H not a multiple of 32)."""
    inputs = _inputs(T, B, H, torch.float64, highway)
    upstream = dict(h=torch.randn(T, B, H, dtype=torch.float64, device=DEVICE),
                    c=torch.randn(T, B, H, dtype=torch.float64, device=DEVICE),
                    c_last=torch.randn(B, H, dtype=torch.float64, device=DEVICE))
    got_out, got_grads = _outputs_and_grads("triton", *inputs, use_tanh, upstream)
    ref_out, ref_grads = _outputs_and_grads("reference", *inputs, use_tanh, upstream)
    torch.testing.assert_close(got_out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_grads, ref_grads, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("uses", [("h",), ("c",), ("c_last",), ("h", "c_last")])
def test_only_some_outputs_get_gradients(uses):
    T, B, H = 11, 2, 5
    inputs = _inputs(T, B, H, torch.float64, "input")
    upstream = dict(h=torch.randn(T, B, H, dtype=torch.float64, device=DEVICE),
                    c=torch.randn(T, B, H, dtype=torch.float64, device=DEVICE),
                    c_last=torch.randn(B, H, dtype=torch.float64, device=DEVICE))
    got = _outputs_and_grads("triton", *inputs, True, upstream, uses)[1]
    want = _outputs_and_grads("reference", *inputs, True, upstream, uses)[1]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2), (torch.float16, 1e-2)],
                         ids=["f32", "bf16", "f16"])
def test_low_precision_accumulates_in_float32(dtype, tol):
    """Outputs and gradients in the input dtype, within ``tol`` relative error of the float64
    reference on the same (rounded) inputs."""
    T, B, H = 40, 2, 16
    inputs = _inputs(T, B, H, dtype, "input")
    upstream = dict(h=torch.randn(T, B, H, dtype=torch.float64, device=DEVICE),
                    c=torch.randn(T, B, H, dtype=torch.float64, device=DEVICE),
                    c_last=torch.randn(B, H, dtype=torch.float64, device=DEVICE))
    got_out, got_grads = _outputs_and_grads("triton", *inputs, False, upstream)
    wide = [t.detach().double().requires_grad_() if t is not None else None for t in inputs]
    ref_out, ref_grads = _outputs_and_grads("reference", *wide, False, upstream)
    for g, e in zip(list(got_out) + list(got_grads), list(ref_out) + list(ref_grads)):
        assert g.dtype == dtype
        assert ((g.double() - e).norm() / e.norm()).item() <= tol


def test_highway_input_without_grad_is_not_computed():
    T, B, H = 9, 2, 6
    u, x, v, b, c0 = _inputs(T, B, H, torch.float64, "input")
    x = x.detach()
    upstream = dict(h=torch.randn(T, B, H, dtype=torch.float64, device=DEVICE))
    for backend in ("triton", "reference"):
        h, _, _ = sru_recurrence(u, v, b, c0, x=x, backend=backend)
        grads = torch.autograd.grad((h * upstream["h"]).sum(), (u, v, b, c0))
        if backend == "triton":
            got = grads
    torch.testing.assert_close(got, grads, rtol=1e-10, atol=1e-10)


def test_gradcheck():
    u, x, v, b, c0 = _inputs(6, 2, 3, torch.float64, "input")

    def fn(u, x, v, b, c0):
        return sru_recurrence(u, v, b, c0, x=x, use_tanh=True, backend="triton")

    assert torch.autograd.gradcheck(fn, (u, x, v, b, c0), eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


def test_sru_layer_on_triton_matches_reference(outputs_and_grads):
    """Two layers (the first projects its highway input, 6 -> 10), bidirectional: outputs, final
    memory and weight gradients equal the reference backend's with the same weights."""
    torch.manual_seed(0)
    ref = SRU(6, 10, num_layers=2, bidirectional=True, backend="reference").double().to(DEVICE)
    fast = SRU(6, 10, num_layers=2, bidirectional=True, backend="triton").double().to(DEVICE)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(12, 3, 6, dtype=torch.float64, device=DEVICE)
    results = [outputs_and_grads(model, x) for model in (ref, fast)]
    torch.testing.assert_close(results[1], results[0], rtol=1e-9, atol=1e-9)


def test_auto_picks_triton_only_on_cuda():
    from quasirnn.ops.backends import kernel_for

    cpu = torch.zeros(1)
    assert kernel_for("auto", cpu) != "triton"
    if torch.cuda.is_available():
        assert kernel_for("auto", cpu.cuda()) == "triton"
