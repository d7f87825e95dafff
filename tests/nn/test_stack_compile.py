"""``torch.compile(fullgraph=True)`` of a QRNN and an SRU stack with ``lengths=`` and with a
PackedSequence: no data-dependent guard, no graph break, and the compiled forward and backward equal
eager's on random inputs (issue 15: no host synchronisation in the stacks' path)."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from quasirnn import QRNN, SRU

T, B, N, H = 6, 3, 4, 5


def _stack(cell: str):
    torch.manual_seed(0)
    if cell == "qrnn":
        return QRNN(N, H, num_layers=2, window=[2, 1], bidirectional=True).double()
    return SRU(N, H, num_layers=2, bidirectional=True).double()


def _run(model, x, lengths):
    """The outputs as plain tensors: ``x`` a PackedSequence (``lengths`` None) or padded with ``lengths``."""
    out, (h_n, c_n) = model(x, lengths=lengths)
    return getattr(out, "data", out), h_n, c_n


@pytest.mark.parametrize("packed", [False, True], ids=["lengths", "packed"])
@pytest.mark.parametrize("cell", ["qrnn", "sru"])
def test_fullgraph_compile_matches_eager(cell, packed):
    torch._dynamo.reset()
    model = _stack(cell)
    x = torch.randn(T, B, N, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 6, 2])
    # the packing itself (torch.nn.utils.rnn, which Dynamo does not trace) happens before the model
    inputs = (pack_padded_sequence(x, lengths, enforce_sorted=False), None) if packed else (x, lengths)
    compiled = torch.compile(lambda x, lengths: _run(model, x, lengths), fullgraph=True, backend="aot_eager")
    got = compiled(*inputs)
    want = _run(model, *inputs)
    weights = [torch.randn_like(t) for t in want]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    grads_got = torch.autograd.grad(sum((g * r).sum() for g, r in zip(got, weights)), [x, *model.parameters()],
                                    retain_graph=True)  # the packing's graph is shared
    grads_want = torch.autograd.grad(sum((w * r).sum() for w, r in zip(want, weights)), [x, *model.parameters()])
    for g, w in zip(grads_got, grads_want):
        torch.testing.assert_close(g, w)
