"""qrnn_pooling (activations + zoneout + pooling + output gate, fused): the fast backends
against the reference, gradients, zoneout-mask semantics and input validation."""

from __future__ import annotations

import pytest
import torch

from quasirnn.ops import GATE_COUNTS, qrnn_pooling, qrnn_pooling_reference

POOLING_NAMES = tuple(GATE_COUNTS)  # "f", "fo", "ifo"
# 300 crosses the 256-channel block; (130, 20, 300) is 40 blocks, enough for both threads to take
# several groups of blocks in the numba kernel.
SHAPES = [(1, 1, 1), (1, 2, 7), (5, 3, 13), (3, 2, 300), (130, 20, 300)]


def _gates(T, B, H, pooling, dtype):
    return torch.randn(T, B, GATE_COUNTS[pooling] * H, dtype=dtype, requires_grad=True)


def _mask(T, B, H, dtype, p_keep=0.6):
    return torch.bernoulli(torch.full((T, B, H), p_keep, dtype=dtype))


@pytest.fixture(params=POOLING_NAMES)
def pooling(request):
    return request.param


# --------------------------------------------------------------------------- forward / backward


@pytest.mark.parametrize("with_mask", [False, True], ids=["no-zoneout", "zoneout"])
@pytest.mark.parametrize("T,B,H", SHAPES)
def test_forward_matches_reference(backend, dtype, tol, pooling, T, B, H, with_mask):
    gates = _gates(T, B, H, pooling, dtype).detach()
    c0 = torch.randn(B, H, dtype=dtype)
    mask = _mask(T, B, H, dtype) if with_mask else None
    h, c, c_last = qrnn_pooling(gates, c0, pooling, mask, backend=backend)
    rh, rc = qrnn_pooling_reference(gates, c0, pooling, mask)
    assert h.shape == c.shape == (T, B, H) and c_last.shape == (B, H)
    assert h.dtype == c.dtype == dtype
    torch.testing.assert_close(c, rc, **tol)
    torch.testing.assert_close(h, rh, **tol)
    torch.testing.assert_close(c_last, c[-1], rtol=0, atol=0)
    if pooling == "f":
        torch.testing.assert_close(h, c, rtol=0, atol=0)


def test_forward_without_c0_starts_from_zeros(backend, pooling):
    gates = _gates(4, 2, 5, pooling, torch.float64).detach()
    h, c, _ = qrnn_pooling(gates, None, pooling, backend=backend)
    rh, rc, _ = qrnn_pooling(gates, torch.zeros(2, 5, dtype=torch.float64), pooling, backend="reference")
    torch.testing.assert_close(c, rc, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, rh, rtol=1e-12, atol=1e-12)


def _grads(backend, gates, c0, pooling, mask, upstream):
    """Gradients of sum(<output, upstream>) with respect to gates and c0."""
    h, c, c_last = qrnn_pooling(gates, c0, pooling, mask, backend=backend)
    outputs = {"h": h, "c": c, "c[-1]": c[-1], "c_last": c_last}
    loss = sum((outputs[k] * g).sum() for k, g in upstream.items())
    return torch.autograd.grad(loss, (gates, c0))


# Which outputs receive an upstream gradient. "c[-1]" indexes the full memory, "c_last" is the
# separate final-memory output; a layer uses h and c_last.
UPSTREAMS = [("h",), ("c[-1]",), ("c_last",), ("h", "c_last"), ("h", "c", "c_last")]


@pytest.mark.parametrize("with_mask", [False, True], ids=["no-zoneout", "zoneout"])
@pytest.mark.parametrize("T,B,H", [(1, 1, 7), (5, 3, 13), (3, 2, 300)])
def test_backward_matches_reference(backend, dtype, tol, pooling, T, B, H, with_mask):
    gates = _gates(T, B, H, pooling, dtype)
    c0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    mask = _mask(T, B, H, dtype) if with_mask else None
    upstream = {
        "h": torch.randn(T, B, H, dtype=dtype),
        "c[-1]": torch.randn(B, H, dtype=dtype),
    }
    dg, dc0 = _grads(backend, gates, c0, pooling, mask, upstream)
    rdg, rdc0 = _grads("reference", gates, c0, pooling, mask, upstream)
    torch.testing.assert_close(dg, rdg, **tol)
    torch.testing.assert_close(dc0, rdc0, **tol)


@pytest.mark.parametrize("outputs", UPSTREAMS, ids=["+".join(u) for u in UPSTREAMS])
def test_backward_each_output(backend, pooling, outputs):
    T, B, H = 4, 3, 6
    gates = _gates(T, B, H, pooling, torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    mask = _mask(T, B, H, torch.float64)
    shapes = {"h": (T, B, H), "c": (T, B, H), "c[-1]": (B, H), "c_last": (B, H)}
    upstream = {k: torch.randn(shapes[k], dtype=torch.float64) for k in outputs}
    dg, dc0 = _grads(backend, gates, c0, pooling, mask, upstream)
    rdg, rdc0 = _grads("reference", gates, c0, pooling, mask, upstream)
    torch.testing.assert_close(dg, rdg, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dc0, rdc0, rtol=1e-12, atol=1e-12)


def test_backward_with_non_contiguous_upstream(backend, pooling):
    """Upstream gradients that are strided views (e.g. from a transpose downstream)."""
    T, B, H = 5, 3, 7
    gates = _gates(T, B, H, pooling, torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    gh = torch.randn(B, T, H, dtype=torch.float64).transpose(0, 1)
    gl = torch.randn(H, B, dtype=torch.float64).t()
    results = []
    for be in (backend, "reference"):
        h, _, c_last = qrnn_pooling(gates, c0, pooling, backend=be)
        results.append(torch.autograd.grad((h, c_last), (gates, c0), (gh, gl)))
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_mask", [False, True], ids=["no-zoneout", "zoneout"])
def test_gradcheck(backend, pooling, with_mask):
    T, B, H = 3, 2, 3
    gates = _gates(T, B, H, pooling, torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    mask = _mask(T, B, H, torch.float64) if with_mask else None

    def fn(gates, c0):
        return qrnn_pooling(gates, c0, pooling, mask, backend=backend)

    assert torch.autograd.gradcheck(fn, (gates, c0), eps=1e-6, atol=1e-8, rtol=1e-6)


# --------------------------------------------------------------------------- bias


@pytest.mark.parametrize("with_mask", [False, True], ids=["no-zoneout", "zoneout"])
@pytest.mark.parametrize("T,B,H", [(1, 1, 7), (5, 3, 13), (3, 2, 300)])
def test_bias_is_added_to_every_step(backend, dtype, tol, pooling, T, B, H, with_mask):
    """bias=b is qrnn_pooling(gates + b): outputs and the gradients of gates, bias and c0."""
    gates = _gates(T, B, H, pooling, dtype)
    bias = torch.randn(gates.shape[-1], dtype=dtype, requires_grad=True)
    c0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    mask = _mask(T, B, H, dtype) if with_mask else None
    gh, gl = torch.randn(T, B, H, dtype=dtype), torch.randn(B, H, dtype=dtype)
    h, c, c_last = qrnn_pooling(gates, c0, pooling, mask, bias=bias, backend=backend)
    rh, rc, rc_last = qrnn_pooling(gates + bias, c0, pooling, mask, backend="reference")
    torch.testing.assert_close((h, c, c_last), (rh, rc, rc_last), **tol)
    grads = torch.autograd.grad((h, c_last), (gates, bias, c0), (gh, gl))
    expected = torch.autograd.grad((rh, rc_last), (gates, bias, c0), (gh, gl))
    torch.testing.assert_close(grads, expected, **tol)


def test_gradcheck_with_bias(backend, pooling):
    T, B, H = 3, 2, 3
    gates = _gates(T, B, H, pooling, torch.float64)
    bias = torch.randn(gates.shape[-1], dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    mask = _mask(T, B, H, torch.float64)

    def fn(gates, bias, c0):
        return qrnn_pooling(gates, c0, pooling, mask, bias=bias, backend=backend)

    assert torch.autograd.gradcheck(fn, (gates, bias, c0), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_bias_in_bfloat16_on_the_cpu_kernel(pooling):
    """bfloat16 gates and bias: the kernel adds the bias in float32 after reading both, so it is
    at least as close to float64 as rounding gates + bias to bfloat16 first."""
    gates = _gates(6, 3, 20, pooling, torch.float64).detach()
    bias = torch.randn(gates.shape[-1], dtype=torch.float64)
    exact, _, _ = qrnn_pooling(gates + bias, None, pooling, backend="reference")
    h, _, _ = qrnn_pooling(gates.bfloat16(), None, pooling, bias=bias.bfloat16(), backend="cpu")
    rounded, _, _ = qrnn_pooling((gates.bfloat16() + bias.bfloat16()), None, pooling, backend="cpu")
    assert (h.double() - exact).abs().max() <= (rounded.double() - exact).abs().max() + 1e-6


def test_rejects_bad_bias():
    gates = torch.randn(3, 2, 12)  # fo pooling: H = 4
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\), got \(4,\)"):
        qrnn_pooling(gates, None, "fo", bias=torch.zeros(4))
    with pytest.raises(TypeError, match=r"bias has dtype torch.float64 but gates has torch.float32"):
        qrnn_pooling(gates, None, "fo", bias=torch.zeros(12, dtype=torch.float64))


@pytest.mark.parametrize("scale", [30.0, 100.0, 1000.0])
def test_saturated_gates_match_reference(backend, dtype, pooling, scale):
    """Large pre-activations saturate tanh/sigmoid; the kernels must stay finite and agree with
    the reference (sigmoid(-100) is 0, not NaN)."""
    T, B, H = 4, 2, 9
    gates = (torch.randn(T, B, GATE_COUNTS[pooling] * H, dtype=dtype) * scale).requires_grad_()
    c0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    upstream = {"h": torch.randn(T, B, H, dtype=dtype), "c_last": torch.randn(B, H, dtype=dtype)}
    h, c, _ = qrnn_pooling(gates, c0, pooling, backend=backend)
    rh, rc, _ = qrnn_pooling(gates, c0, pooling, backend="reference")
    assert torch.isfinite(h).all() and torch.isfinite(c).all(), "NaN/inf in the forward pass"
    torch.testing.assert_close(c, rc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h, rh, rtol=1e-5, atol=1e-5)
    dg, dc0 = _grads(backend, gates, c0, pooling, None, upstream)
    rdg, rdc0 = _grads("reference", gates, c0, pooling, None, upstream)
    assert torch.isfinite(dg).all() and torch.isfinite(dc0).all(), "NaN/inf in the backward pass"
    torch.testing.assert_close(dg, rdg, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dc0, rdc0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gate", range(4), ids=list("ZFOI"))
def test_nan_propagates_and_inf_saturates_like_reference(backend, dtype, gate):
    """A NaN pre-activation must show up in the output (no clamp may hide a diverged model),
    in exactly the places the reference puts it; ±inf pre-activations saturate the gates."""
    T, B, H = 4, 2, 5
    for bad, where in ((float("nan"), (1, 0, 2)), (float("inf"), (2, 1, 3)), (-float("inf"), (0, 1, 0))):
        gates = torch.randn(T, B, 4 * H, dtype=dtype)
        t, b, j = where
        gates[t, b, gate * H + j] = bad
        h, c, _ = qrnn_pooling(gates, None, "ifo", backend=backend)
        rh, rc, _ = qrnn_pooling(gates, None, "ifo", backend="reference")
        assert torch.equal(h.isnan(), rh.isnan()) and torch.equal(c.isnan(), rc.isnan()), bad
        if bad != bad:  # NaN
            assert rh.isnan().any()
        torch.testing.assert_close(h, rh, rtol=1e-5, atol=1e-5, equal_nan=True)
        torch.testing.assert_close(c, rc, rtol=1e-5, atol=1e-5, equal_nan=True)


# --------------------------------------------------------------------------- zoneout semantics


@pytest.mark.parametrize("impl", ["cpu", "torch", "reference"])
def test_zoneout_mask_zero_copies_previous_memory_exactly(impl, pooling):
    """Zoneout (§2.1): where the keep-mask is 0 the channel keeps its previous memory, bit for bit."""
    T, B, H = 6, 3, 11
    gates = torch.randn(T, B, GATE_COUNTS[pooling] * H, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64)
    mask = _mask(T, B, H, torch.float64, p_keep=0.5)
    mask[2] = 0  # one whole step zoned out
    _, c, _ = qrnn_pooling(gates, c0, pooling, mask, backend=impl)
    prev = torch.cat([c0[None], c[:-1]])
    zoned = mask == 0
    assert zoned.any() and (~zoned).any()
    assert torch.equal(c[zoned], prev[zoned])
    # ...and where the mask is 1 the memory does move.
    assert (c[~zoned] != prev[~zoned]).all()


@pytest.mark.parametrize("impl", ["cpu", "torch", "reference"])
def test_zoneout_all_zero_mask_freezes_memory(impl, pooling):
    T, B, H = 5, 2, 4
    gates = torch.randn(T, B, GATE_COUNTS[pooling] * H, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64)
    _, c, c_last = qrnn_pooling(gates, c0, pooling, torch.zeros(T, B, H, dtype=torch.float64), backend=impl)
    assert torch.equal(c, c0.expand(T, B, H))
    assert torch.equal(c_last, c0)


def test_zoneout_all_ones_mask_is_no_zoneout(backend, pooling):
    T, B, H = 5, 2, 4
    gates = torch.randn(T, B, GATE_COUNTS[pooling] * H, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64)
    with_mask = qrnn_pooling(gates, c0, pooling, torch.ones(T, B, H, dtype=torch.float64), backend=backend)
    without = qrnn_pooling(gates, c0, pooling, None, backend=backend)
    torch.testing.assert_close(with_mask, without, rtol=1e-14, atol=1e-14)


def test_zoneout_mask_gets_no_gradient_to_zoned_forget_gate(backend, pooling):
    """Where m = 0 the forget gate is the constant 1: its pre-activation gets zero gradient."""
    T, B, H = 4, 2, 5
    gates = _gates(T, B, H, pooling, torch.float64)
    mask = _mask(T, B, H, torch.float64, p_keep=0.5)
    h, _, c_last = qrnn_pooling(gates, torch.randn(B, H, dtype=torch.float64), pooling, mask, backend=backend)
    (dg,) = torch.autograd.grad((h.sum() + c_last.sum()), gates)
    dF = dg.chunk(GATE_COUNTS[pooling], dim=-1)[1]
    assert torch.equal(dF[mask == 0], torch.zeros_like(dF[mask == 0]))
    assert (dF[mask == 1] != 0).all()


# --------------------------------------------------------------------------- validation


def test_rejects_unknown_pooling():
    with pytest.raises(ValueError, match=r"pooling must be one of \('f', 'fo', 'ifo'\), got 'o'"):
        qrnn_pooling(torch.randn(2, 1, 6), None, "o")


def test_rejects_unknown_backend():
    with pytest.raises(ValueError, match=r"backend must be one of .*got 'fast'"):
        qrnn_pooling(torch.randn(2, 1, 6), None, "fo", backend="fast")


@pytest.mark.parametrize(
    "shape,pooling,pattern",
    [
        ((2, 1, 7), "fo", r"gates must have shape \(T, B, 3\*H\) for 'fo' pooling, got shape \(2, 1, 7\)"),
        ((2, 1, 6), "ifo", r"gates must have shape \(T, B, 4\*H\) for 'ifo' pooling, got shape \(2, 1, 6\)"),
        ((2, 6), "fo", r"gates must have shape \(T, B, 3\*H\) for 'fo' pooling, got shape \(2, 6\)"),
        ((1, 2, 1, 6), "f", r"gates must have shape \(T, B, 2\*H\) for 'f' pooling, got shape \(1, 2, 1, 6\)"),
    ],
)
def test_rejects_bad_gate_shape(shape, pooling, pattern):
    with pytest.raises(ValueError, match=pattern):
        qrnn_pooling(torch.randn(shape), None, pooling)


def test_rejects_integer_gates():
    with pytest.raises(TypeError, match=r"gates must be a floating-point tensor.*int32"):
        qrnn_pooling(torch.ones(2, 1, 6, dtype=torch.int32), None, "fo")


def test_rejects_bad_c0_and_mask():
    gates = torch.randn(3, 2, 12)  # fo pooling: H = 4
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 4\), got \(2, 12\)"):
        qrnn_pooling(gates, torch.randn(2, 12), "fo")
    with pytest.raises(ValueError, match=r"zoneout_mask must have shape \(3, 2, 4\), got \(3, 2, 12\)"):
        qrnn_pooling(gates, None, "fo", torch.ones(3, 2, 12))
    with pytest.raises(TypeError, match=r"zoneout_mask has dtype torch.float64 but gates has torch.float32"):
        qrnn_pooling(gates, None, "fo", torch.ones(3, 2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"c0 has dtype torch.float64"):
        qrnn_pooling(gates, torch.zeros(2, 4, dtype=torch.float64), "fo")
