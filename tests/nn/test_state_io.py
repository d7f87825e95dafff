"""RecurrentState (QRNNState) through torch.save / torch.load(weights_only=True), torch.export's pytree and
copying; torch.jit.script of a QRNN or SRU raises one clear error pointing to torch.export / ONNX."""

from __future__ import annotations

import io

import pytest
import torch

from quasirnn import QRNN, SRU, QRNNLayer, QRNNState, RecurrentState


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("cls", [QRNN, SRU])
def test_state_round_trips_through_weights_only_load_and_resumes(cls):
    torch.manual_seed(0)
    kwargs = {"window": 2} if cls is QRNN else {}
    model = cls(3, 4, num_layers=2, **kwargs).double()
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    first, state = model(x[:3])
    loaded = _roundtrip({"hidden": state, "nested": (state, None)})
    for got in (loaded["hidden"], loaded["nested"][0]):
        assert isinstance(got, QRNNState)
        torch.testing.assert_close(got.h, state.h, rtol=0, atol=0)
        torch.testing.assert_close(got.c, state.c, rtol=0, atol=0)
        assert len(got.inputs) == len(state.inputs)
        for a, b in zip(got.inputs, state.inputs):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        rest, _ = model(x[3:], got)
        torch.testing.assert_close(torch.cat([first, rest]), model(x)[0], rtol=1e-12, atol=1e-12)


def test_the_state_keeps_its_former_name_and_files_saved_under_it_load():
    assert QRNNState is RecurrentState
    _, state = QRNN(3, 4, window=2)(torch.randn(5, 2, 3))
    buf = io.BytesIO()
    RecurrentState.__qualname__ = "QRNNState"  # pickled as before the rename
    try:
        torch.save({"hidden": state}, buf)
    finally:
        RecurrentState.__qualname__ = "RecurrentState"
    assert b"QRNNState" in buf.getvalue() and b"RecurrentState" not in buf.getvalue()
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)["hidden"]
    assert type(loaded) is RecurrentState
    torch.testing.assert_close(loaded.c, state.c, rtol=0, atol=0)


def test_legacy_state_without_h_round_trips():
    state = QRNNState(torch.randn(2, 3, 4), (torch.randn(1, 3, 5), torch.randn(1, 3, 4)))
    got = _roundtrip(state)
    assert got.h is None and torch.equal(got.c, state.c) and len(got.inputs) == 2


def test_state_is_a_pytree_node_with_its_history():
    state = QRNNState(torch.randn(2, 3, 4), torch.randn(2, 3, 4), (torch.randn(1, 3, 5),))
    leaves, spec = torch.utils._pytree.tree_flatten(state)
    assert len(leaves) == 3
    again = torch.utils._pytree.tree_unflatten([t * 2 for t in leaves], spec)
    assert isinstance(again, QRNNState)
    torch.testing.assert_close(again.inputs[0], state.inputs[0] * 2)


@pytest.mark.parametrize("make", [lambda: QRNN(3, 4, 2, window=2), lambda: SRU(3, 4), lambda: QRNNLayer(3, 4)],
                         ids=["qrnn", "sru", "qrnn_layer"])
def test_jit_script_raises_one_clear_error(make):
    with pytest.raises(RuntimeError, match=r"torch.jit.script does not support quasirnn\.\w+.*torch.export.*ONNX"):
        torch.jit.script(make())


def test_torch_export_returns_a_qrnn_state_and_takes_h0_c0():
    torch.manual_seed(0)
    model = QRNN(4, 6, 2, window=2).eval()
    x, c0 = torch.randn(5, 3, 4), torch.randn(2, 3, 6)
    out, state = torch.export.export(model, (x,)).module()(x)
    ref_out, ref = model(x)
    assert isinstance(state, QRNNState) and len(state.inputs) == 2
    torch.testing.assert_close(out, ref_out)
    for a, b in zip([state.h, state.c, *state.inputs], [ref.h, ref.c, *ref.inputs]):
        torch.testing.assert_close(a, b)

    class LSTMStyle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = model

        def forward(self, x, h0, c0):
            output, (h_n, c_n) = self.rnn(x, (h0, c0))
            return output, h_n, c_n

    wrapped = LSTMStyle()
    h0 = torch.zeros(2, 3, 6)
    program = torch.export.export(wrapped, (x, h0, c0))
    torch.testing.assert_close(program.module()(x, h0, c0), wrapped(x, h0, c0))
