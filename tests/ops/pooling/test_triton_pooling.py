"""The Triton pooling kernels beyond the shared backend tests: the time-chunked scan, 16-bit
inputs, outputs fully written (poisoned before each run), the chunk planner, and the layer on
top. Runs on CUDA where there is a GPU, otherwise on CPU tensors in Triton's interpreter."""

from __future__ import annotations

import pytest
import torch

from quasirnn import QRNN
from quasirnn.ops import GATE_COUNTS, forget_mult, forget_mult_reference, qrnn_pooling, qrnn_pooling_reference
from quasirnn.ops import triton_runtime
from quasirnn.ops.pooling import triton_kernel as tk

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not triton_runtime.usable_on(DEVICE), reason="needs triton, and a GPU or TRITON_INTERPRET=1")

POOLING_NAMES = tuple(GATE_COUNTS)


def _operands(T, B, H, pooling, dtype, with_mask):
    """Pre-activation z, f, i, o, a keep-mask, c0: random, nothing zero, on DEVICE."""
    def rnd(*shape):
        return torch.randn(*shape, dtype=dtype, device=DEVICE)

    z, f = rnd(T, B, H), rnd(T, B, H)
    o = rnd(T, B, H) if pooling in ("fo", "ifo") else None
    i = rnd(T, B, H) if pooling == "ifo" else None
    mask = torch.bernoulli(torch.full((T, B, H), 0.7, device=DEVICE)).to(dtype) if with_mask else None
    return z, f, i, o, mask, rnd(B, H)


def _reference(z, f, i, o, mask, c0, activate=True):
    """(c, h) and a function of upstream gradients giving the reference gradients, in float64."""
    leaves = [x.double().requires_grad_() for x in (z, f, c0)]
    extra = [None if x is None else x.double().requires_grad_() for x in (i, o)]
    zz, ff, cc0 = leaves
    ii, oo = extra
    m = None if mask is None else mask.double()
    if activate:
        zz, ff = torch.tanh(zz), torch.sigmoid(ff)
        ii = None if ii is None else torch.sigmoid(ii)
        oo = None if oo is None else torch.sigmoid(oo)
    if m is not None:
        ff = 1 - m * (1 - ff)
        ii = None if ii is None else ii * m
    c = forget_mult_reference(ff, zz, cc0, i=ii)
    h = c if oo is None else oo * c

    def grads(gh, gc, gl):
        loss = (c * gc.double()).sum() + (c[-1] * gl.double()).sum()
        if oo is not None:
            loss = loss + (h * gh.double()).sum()
        wrt = leaves + [x for x in extra if x is not None]
        return torch.autograd.grad(loss, wrt)

    return c, h, grads


@pytest.mark.parametrize("with_mask", [False, True], ids=["no-zoneout", "zoneout"])
@pytest.mark.parametrize("chunk", [1, 4, 7, None], ids=["chunk1", "chunk4", "chunk7", "planned"])
@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_chunked_scan_matches_reference(pooling, chunk, with_mask):
    """Forward and backward with time cut into chunks (uneven last chunk included) equal the
    plain loop in float64: chunk summaries compose exactly."""
    T, B, H = 23, 2, 19
    z, f, i, o, mask, c0 = _operands(T, B, H, pooling, torch.float64, with_mask)
    c, h = tk.pool_forward(z, f, i, o, c0, mask, True, chunk=chunk)
    rc, rh, ref_grads = _reference(z, f, i, o, mask, c0)
    torch.testing.assert_close(c, rc, rtol=1e-12, atol=1e-12)
    if o is not None:
        torch.testing.assert_close(h, rh, rtol=1e-12, atol=1e-12)
    gh, gc, gl = (torch.randn_like(c), torch.randn_like(c), torch.randn_like(c0))
    dz, df, di, d_o, dc0 = tk.pool_backward(gh if o is not None else None, gc, gl, z, f, i, o, c0, mask, c, True,
                                            chunk=chunk)
    expected = ref_grads(gh, gc, gl)
    got = [dz, df, dc0] + [x for x in (di, d_o) if x is not None]
    for name, g, e in zip(("dz", "df", "dc0", "di/do", "do"), got, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


def test_planner_chunks_time_only_when_channels_are_few():
    cpu = torch.device("cpu")
    few = tk.plan(512, 1, 20, cpu)  # 2 channel blocks: time is cut to fill the target
    assert few.n_chunks > 1 and few.chunk >= tk.MIN_CHUNK
    assert few.chunk * few.n_chunks >= 512 > few.chunk * (few.n_chunks - 1)
    many = tk.plan(512, 64, 1024, cpu)  # hundreds of blocks already
    assert many.n_chunks == 1 and many.chunk == 512
    short = tk.plan(20, 1, 20, cpu)  # too short to cut into chunks of MIN_CHUNK
    assert short.n_chunks == 1
    assert tk.plan(100, 1, 20, cpu, chunk=10).n_chunks == 10
    # channel blocks waste at most ~10 % of the lanes
    for H in (1, 7, 20, 37, 320, 512, 1000):
        block = tk.plan(8, 1, H, cpu).block
        assert block & (block - 1) == 0 and (-H % block) <= max(0.1 * H, 15), (H, block)


def test_default_plan_is_chunked_through_the_public_op():
    """A long sequence with few channels goes through the three-launch chunked path by default
    and still matches the reference."""
    T, B, H = 70, 1, 5
    assert tk.plan(T, B, H, DEVICE).n_chunks > 1 or DEVICE.type == "cuda"
    gates = torch.randn(T, B, 3 * H, dtype=torch.float64, device=DEVICE, requires_grad=True)
    c0 = torch.randn(B, H, dtype=torch.float64, device=DEVICE, requires_grad=True)
    h, c, c_last = qrnn_pooling(gates, c0, "fo", backend="triton")
    rh, rc = qrnn_pooling_reference(gates, c0, "fo")
    torch.testing.assert_close(h, rh, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(h)
    got = torch.autograd.grad((h * g).sum() + c_last.sum(), (gates, c0))
    want = torch.autograd.grad((rh * g).sum() + rc[-1].sum(), (gates, c0))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2), (torch.float16, 1e-2)],
                         ids=["f32", "bf16", "f16"])
@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_low_precision_accumulates_in_float32(pooling, dtype, tol):
    """Inputs in float32/bfloat16/float16: outputs in the input dtype, within the issue's
    relative error of the float64 reference on the same (rounded) inputs, forward and backward.
    A long sequence makes a 16-bit accumulator fail: only float32 accumulation passes."""
    T, B, H = 120, 1, 16
    z, f, i, o, mask, c0 = _operands(T, B, H, pooling, dtype, with_mask=True)
    f = f + 3.0  # forget gates near 1: the memory integrates over many steps
    c, h = tk.pool_forward(z, f, i, o, c0, mask, True)
    assert c.dtype == dtype and h.dtype == dtype
    rc, rh, ref_grads = _reference(z, f, i, o, mask, c0)

    def rel(x, ref):
        return ((x.double() - ref).norm() / ref.norm()).item()

    # 16-bit outputs: accumulating in float32 leaves only the final rounding to the output dtype,
    # every element within one unit in the last place; a 16-bit accumulator drifts by many
    # (bf16: ~0.6 % here). float32: within 1e-5 of the float64 reference.
    ulp, floor = {torch.float32: (1e-5, 1e-6), torch.bfloat16: (2.0**-7, 1e-6), torch.float16: (2.0**-10, 1e-6)}[dtype]
    for x, ref in ((c, rc), (h, rh)) if o is not None else ((c, rc),):
        assert rel(x, ref) <= tol
        assert ((x.double() - ref).abs() <= ulp * ref.abs() + floor).all()
    gh, gc, gl = (torch.randn_like(c), torch.randn_like(c), torch.randn_like(c0))
    got = tk.pool_backward(gh if o is not None else None, gc, gl, z, f, i, o, c0, mask, c, True)
    got = [g for g in (got[0], got[1], got[4], got[2], got[3]) if g is not None]
    for g, e in zip(got, ref_grads(gh, gc, gl)):
        assert g.dtype == dtype
        assert rel(g, e) <= 2 * tol


@pytest.mark.parametrize("chunk", [None, 3])
@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_every_output_element_is_written(monkeypatch, pooling, chunk):
    """Every buffer the kernels allocate (outputs and chunk carries) is poisoned with NaN before
    the launch; no NaN may survive in what they return."""
    T, B, H = 13, 3, 21
    z, f, i, o, mask, c0 = _operands(T, B, H, pooling, torch.float32, with_mask=True)
    empty = torch.empty

    def poisoned(*args, **kwargs):
        return empty(*args, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(torch, "empty", poisoned)
    c, h = tk.pool_forward(z, f, i, o, c0, mask, True, chunk=chunk)
    outs = [c] + ([h] if o is not None else [])
    gh = torch.randn_like(c) if o is not None else None
    outs += [g for g in tk.pool_backward(gh, None, torch.randn_like(c0), z, f, i, o, c0, mask, c, True, chunk=chunk)
             if g is not None]
    for x in outs:
        assert x.numel() and not x.isnan().any()


def test_writes_into_strided_gradient_views():
    """The backward pass can write into the Z/F/O slices of one gradient tensor (how the layer
    op uses it), leaving nothing else touched."""
    T, B, H = 9, 2, 6
    gates = torch.randn(T, B, 3 * H, device=DEVICE)
    z, f, o = gates.chunk(3, dim=-1)
    c0 = torch.randn(B, H, device=DEVICE)
    c, _ = tk.pool_forward(z, f, None, o, c0, None, True)
    dgates = torch.full_like(gates, float("nan"))
    views = dgates.chunk(3, dim=-1)
    gh = torch.randn(T, B, H, device=DEVICE)
    dz, df, _, d_o, _ = tk.pool_backward(gh, None, None, z, f, None, o, c0, None, c, True,
                                         out=(views[0], views[1], None, views[2]))
    assert dz.data_ptr() == views[0].data_ptr() and not dgates.isnan().any()
    ref = tk.pool_backward(gh, None, None, z.contiguous(), f.contiguous(), None, o.contiguous(), c0, None, c, True)
    torch.testing.assert_close(torch.cat([ref[0], ref[1], ref[3]], -1), dgates)


def test_forget_mult_on_triton_matches_reference_in_float64():
    T, B, H = 30, 2, 9
    f = torch.rand(T, B, H, dtype=torch.float64, device=DEVICE).requires_grad_()
    z = torch.randn(T, B, H, dtype=torch.float64, device=DEVICE, requires_grad=True)
    i = torch.rand(T, B, H, dtype=torch.float64, device=DEVICE).requires_grad_()
    c0 = torch.randn(B, H, dtype=torch.float64, device=DEVICE, requires_grad=True)
    g = torch.randn(T, B, H, dtype=torch.float64, device=DEVICE)
    for kwargs in ({}, {"i": i}):
        out = forget_mult(f, z, c0, backend="triton", **kwargs)
        ref = forget_mult(f, z, c0, backend="reference", **kwargs)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        leaves = (f, z, c0) + tuple(kwargs.values())
        torch.testing.assert_close(torch.autograd.grad(out, leaves, g), torch.autograd.grad(ref, leaves, g),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_gradcheck_chunked(monkeypatch, pooling):
    """gradcheck in float64 through the public op with time forced into chunks of 2."""
    plan = tk.plan
    monkeypatch.setattr(tk, "plan", lambda T, B, H, device, chunk=None: plan(T, B, H, device, 2))
    gates = torch.randn(5, 2, GATE_COUNTS[pooling] * 2, dtype=torch.float64, device=DEVICE, requires_grad=True)
    c0 = torch.randn(2, 2, dtype=torch.float64, device=DEVICE, requires_grad=True)
    mask = torch.bernoulli(torch.full((5, 2, 2), 0.7, dtype=torch.float64, device=DEVICE))

    def fn(gates, c0):
        return qrnn_pooling(gates, c0, pooling, mask, backend="triton")

    assert torch.autograd.gradcheck(fn, (gates, c0), eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


def test_qrnn_layer_on_triton_matches_default_kernel(outputs_and_grads):
    """The whole layer (window 2, bidirectional, two layers) on the Triton kernels equals the
    same weights on the reference pooling, outputs and weight gradients."""
    torch.manual_seed(0)
    ref = QRNN(6, 10, num_layers=2, window=2, bidirectional=True, backend="reference").double().to(DEVICE)
    fast = QRNN(6, 10, num_layers=2, window=2, bidirectional=True, backend="triton").double().to(DEVICE)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(17, 3, 6, dtype=torch.float64, device=DEVICE)
    results = [outputs_and_grads(model, x) for model in (ref, fast)]
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(results[1][2], results[0][2], rtol=1e-9, atol=1e-9)


def test_cpu_tensors_outside_the_interpreter_are_refused(monkeypatch):
    if DEVICE.type == "cuda":
        pytest.skip("on a GPU machine CPU tensors never reach the Triton kernels")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match=r"backend='triton' runs on CUDA tensors.*TRITON_INTERPRET=1"):
        forget_mult(torch.rand(3, 1, 2), torch.randn(3, 1, 2), backend="triton")
