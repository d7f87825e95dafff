"""Mixed precision: QRNN under torch.autocast (16-bit gates, float32 recurrence) and the
language model's training step (the ``--precision`` option is tested with the CLI). On this CPU-only CI autocast runs in bfloat16 on the
CPU; the same code path serves CUDA's bf16/fp16."""

from __future__ import annotations

import pytest
import torch

from quasirnn import QRNN
from quasirnn.experiments.language_model import lm_loss
from quasirnn.models import LanguageModel
from quasirnn.ops import triton_runtime
from quasirnn.training.optim import optimizer_step
from quasirnn.training.precision import autocast

BACKENDS = ["auto", "torch"] + (["triton"] if triton_runtime.usable_on(torch.device("cpu")) else [])


def _rel(x, ref):
    return ((x.float() - ref.float()).norm() / ref.float().norm()).item()


@pytest.mark.parametrize("pooling", ["f", "fo", "ifo"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_qrnn_under_bf16_autocast_tracks_float32(backend, pooling):
    torch.manual_seed(0)
    model = QRNN(12, 16, num_layers=2, window=2, pooling=pooling, backend=backend)
    x = torch.randn(40, 3, 12)
    hx = torch.randn(2, 3, 16)  # float32 initial memories, as a previous float32 call returns
    out32, state32 = model(x, hx)
    grads32 = torch.autograd.grad(out32.square().sum(), list(model.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16, state16 = model(x, hx)
        # the state of a 16-bit call continues the sequence under autocast too
        more, _ = model(x[:5], state16)
    assert out16.dtype == torch.bfloat16 and state16.c.dtype == torch.bfloat16 and more.dtype == torch.bfloat16
    assert _rel(out16, out32) < 2e-2 and _rel(state16.c, state32.c) < 2e-2
    grads16 = torch.autograd.grad(out16.float().square().sum(), list(model.parameters()))
    for g16, g32 in zip(grads16, grads32):
        assert g16.dtype == torch.float32  # parameters and their gradients stay float32
        assert _rel(g16, g32) < 5e-2


def test_lm_train_step_in_bf16_learns_like_float32():
    """Thirty truncated-BPTT steps on a learnable stream: bf16 autocast lowers the loss as far
    as float32 does (within 10 %), with float32 parameters throughout."""
    ids = torch.arange(50).repeat(6).view(-1, 1).repeat(1, 4)  # a deterministic ring of words
    finals = {}
    for precision in ("32", "bf16"):
        torch.manual_seed(0)
        model = LanguageModel(50, cell="qrnn", emb_size=16, hidden_size=16, num_layers=2, dropout=0, dropouth=0,
                              dropouti=0, dropoute=0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses, hidden = [], None
        for _ in range(30):
            with autocast(precision, ids.device):  # the trainer's step: the task's loss, then optimizer_step
                loss, hidden = lm_loss(model, ids[:20], ids[1:21], hidden)
            optimizer_step(model, opt, loss, clip=0.25)
            losses.append(loss.item())
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert losses[-1] < 0.8 * losses[0]
        finals[precision] = losses[-1]
    assert abs(finals["bf16"] - finals["32"]) < 0.1 * finals["32"]
