"""The CPU kernels' output cache (ops/_cpu/buffers.py): memory is handed out again only once nothing refers to it."""

from __future__ import annotations

import pytest
import torch

from quasirnn.ops import forget_mult, forget_mult_reference, qrnn_pooling
from quasirnn.ops._cpu import buffers as cpu_buffers
from quasirnn.ops._cpu import runtime as cpu_runtime
from quasirnn.ops import qrnn_pooling_reference

MB = 1 << 20
BIG = (64, 32, 1024)  # 8 MiB of float32: cached
SMALL = (4, 2, 8)


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    """Each test starts with an empty cache of the default limit, and leaves the module's one alone."""
    monkeypatch.setattr(cpu_buffers, "_buffers", {})
    monkeypatch.setattr(cpu_buffers, "_held", 0)
    monkeypatch.setattr(cpu_buffers, "_limit", None)
    monkeypatch.delenv("QUASIRNN_CPU_CACHE_MB", raising=False)


def test_a_freed_output_is_reused_and_a_live_one_never():
    a = cpu_buffers.fresh(BIG, torch.float32)
    b = cpu_buffers.fresh(BIG, torch.float32)
    assert a.data_ptr() != b.data_ptr() and a.shape == BIG and a.is_contiguous()
    address = a.data_ptr()
    del a
    c = cpu_buffers.fresh(BIG, torch.bfloat16)  # 4 MiB: other size class, new buffer
    d = cpu_buffers.fresh(BIG, torch.float32)
    assert d.data_ptr() == address and c.data_ptr() not in (address, b.data_ptr())
    assert cpu_buffers.cached_bytes() == 8 * MB + 8 * MB + 4 * MB


@pytest.mark.parametrize("holder", ["view", "numpy", "autograd", "storage"])
def test_memory_still_referred_to_is_not_handed_out(holder):
    a = cpu_buffers.fresh(BIG, torch.float32).normal_()
    address = a.data_ptr()
    if holder == "view":
        kept = a[3:5]
    elif holder == "numpy":
        kept = a.numpy()
    elif holder == "autograd":
        w = torch.randn(1, requires_grad=True)
        kept = (a * w).sum()  # the product saves a for w's gradient
    else:
        kept = a.untyped_storage()
    del a
    b = cpu_buffers.fresh(BIG, torch.float32)
    assert b.data_ptr() != address
    del kept
    assert cpu_buffers.fresh(BIG, torch.float32).data_ptr() == address


def test_small_outputs_bypass_the_cache():
    t = cpu_buffers.fresh(SMALL, torch.float32)
    assert t.shape == SMALL and cpu_buffers.cached_bytes() == 0
    assert cpu_buffers.fresh((0, 3), torch.float32).numel() == 0


def test_the_limit_bounds_the_cache_and_idle_buffers_make_room(monkeypatch):
    monkeypatch.setenv("QUASIRNN_CPU_CACHE_MB", "20")
    a, b = cpu_buffers.fresh(BIG, torch.float32), cpu_buffers.fresh(BIG, torch.float32)
    c = cpu_buffers.fresh(BIG, torch.float32)  # would make 24 MiB: allocated outside the cache
    assert cpu_buffers.cached_bytes() == 16 * MB and c.shape == BIG
    del a
    # 16 MiB more: a's idle 8 MiB are released to make room, b's live ones are not, so it still
    # does not fit and is allocated outside the cache
    d = cpu_buffers.fresh((128, 32, 1024), torch.float32)
    assert cpu_buffers.cached_bytes() == 8 * MB and d.shape == (128, 32, 1024)
    e = cpu_buffers.fresh((96, 32, 1024), torch.float32)  # 12 MiB: fits beside b's 8
    assert cpu_buffers.cached_bytes() == 20 * MB and len({b.data_ptr(), c.data_ptr(), d.data_ptr(), e.data_ptr()}) == 4


def test_empty_cache_releases_idle_buffers_only():
    a = cpu_buffers.fresh(BIG, torch.float32)
    cpu_buffers.fresh(BIG, torch.float32)  # freed at once
    assert cpu_buffers.cached_bytes() == 16 * MB
    cpu_buffers.empty_cache()
    assert cpu_buffers.cached_bytes() == 8 * MB
    del a
    cpu_buffers.empty_cache()
    assert cpu_buffers.cached_bytes() == 0


def test_a_zero_limit_turns_the_cache_off(monkeypatch):
    monkeypatch.setenv("QUASIRNN_CPU_CACHE_MB", "0")
    cpu_buffers.fresh(BIG, torch.float32)
    assert cpu_buffers.cached_bytes() == 0


@pytest.mark.parametrize("text", ["lots", "-5"])
def test_a_bad_limit_is_one_clear_error(monkeypatch, text):
    monkeypatch.setenv("QUASIRNN_CPU_CACHE_MB", text)
    with pytest.raises(ValueError, match=r"^QUASIRNN_CPU_CACHE_MB must be a number of MiB >= 0, got"):
        cpu_buffers.fresh(BIG, torch.float32)


@pytest.mark.skipif(not cpu_runtime.available(), reason="numba is not usable here")
def test_kernels_write_every_element_of_a_reused_buffer():
    """A reused buffer still holds the last call's values: the kernels must overwrite all of them."""
    T, B, H = BIG
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # the 2nd and 3rd calls get the 1st call's freed buffers
        f = torch.rand(T, B, H, generator=gen)
        z = torch.randn(T, B, H, generator=gen)
        c = forget_mult(f, z, backend="cpu")
        torch.testing.assert_close(c, forget_mult_reference(f, z), rtol=1e-5, atol=1e-5)
        del c
    gates = torch.randn(T // 4, B, 3 * H, generator=gen, requires_grad=True)
    for _ in range(2):
        h, c, _ = qrnn_pooling(gates, pooling="fo", backend="cpu")
        ref_h, ref_c = qrnn_pooling_reference(gates.detach(), None, "fo", None)
        torch.testing.assert_close(h, ref_h, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c, ref_c, rtol=1e-5, atol=1e-5)
        (grad,) = torch.autograd.grad((h * h).sum(), gates)
        g = gates.detach().requires_grad_()
        (ref,) = torch.autograd.grad((qrnn_pooling_reference(g, None, "fo", None)[0] ** 2).sum(), g)
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4)
        del h, c, grad
    assert cpu_buffers.cached_bytes() > 0
