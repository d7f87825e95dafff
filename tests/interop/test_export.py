"""torch.export of an eval-mode QRNN and SRU: the exported program runs the fused custom op and
matches eager output (unidirectional and bidirectional, window 1 and 2, with a state)."""

from __future__ import annotations

import pytest
import torch

from quasirnn import QRNN, SRU


class Wrapped(torch.nn.Module):
    """A QRNN (or SRU) returning plain tensors (output, final memories), as an exported model would."""

    def __init__(self, cls=QRNN, **kwargs):
        super().__init__()
        self.qrnn = cls(**kwargs)

    def forward(self, x, c0):
        out, state = self.qrnn(x, c0)
        return out, state.c


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("window", [1, 2])
def test_exported_qrnn_matches_eager(window, bidirectional):
    torch.manual_seed(0)
    D = 2 if bidirectional else 1
    model = Wrapped(input_size=5, hidden_size=8, num_layers=2, window=window, bidirectional=bidirectional,
                    pooling="ifo").eval()
    x, c0 = torch.randn(12, 3, 5), torch.randn(2 * D, 3, 8)
    program = torch.export.export(model, (x, c0))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert any("quasirnn.qrnn_pooling" in op for op in ops), ops
    exported = program.module()
    x2, c2 = torch.randn(12, 3, 5), torch.randn(2 * D, 3, 8)  # other values, same shapes
    for args in ((x, c0), (x2, c2)):
        eager = model(*args)
        got = exported(*args)
        torch.testing.assert_close(got, eager, rtol=1e-6, atol=1e-6)


def test_export_with_dynamic_sequence_length():
    torch.manual_seed(0)
    model = Wrapped(input_size=4, hidden_size=6, num_layers=1, window=2).eval()
    T = torch.export.Dim("T", min=2, max=1024)
    program = torch.export.export(model, (torch.randn(10, 2, 4), torch.randn(1, 2, 6)),
                                  dynamic_shapes={"x": {0: T}, "c0": None})
    x, c0 = torch.randn(37, 2, 4), torch.randn(1, 2, 6)
    torch.testing.assert_close(program.module()(x, c0), model(x, c0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("recurrent_gate", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_exported_sru_matches_eager(bidirectional, recurrent_gate):
    torch.manual_seed(0)
    D = 2 if bidirectional else 1
    model = Wrapped(SRU, input_size=5, hidden_size=8, num_layers=2, bidirectional=bidirectional,
                    recurrent_gate=recurrent_gate).eval()
    x, c0 = torch.randn(12, 3, 5), torch.randn(2 * D, 3, 8)
    program = torch.export.export(model, (x, c0))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    wanted = "quasirnn.sru_recurrence" if recurrent_gate else "quasirnn.forget_mult"
    assert any(wanted in op for op in ops), ops
    x2, c2 = torch.randn(12, 3, 5), torch.randn(2 * D, 3, 8)
    for args in ((x, c0), (x2, c2)):
        torch.testing.assert_close(program.module()(*args), model(*args), rtol=1e-6, atol=1e-6)
