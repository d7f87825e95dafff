"""ONNX export (torch.onnx.export(dynamo=True)) of QRNN and SRU with the real custom ops, their
recurrences translated to ONNX Scan by quasirnn.onnx: the file, traced at one sequence length,
runs in onnxruntime at three other lengths and matches eager (1e-5)."""

from __future__ import annotations

import warnings

import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import quasirnn.onnx  # noqa: E402
from quasirnn import QRNN, SRU  # noqa: E402

LENGTHS = (1, 7, 33)  # the trace uses T = 12


class Plain(torch.nn.Module):
    """Returns (output, h_n, c_n) as tensors, the nn.LSTM way."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        output, (h_n, c_n) = self.rnn(x)
        return output, h_n, c_n


def _check(model, tmp_path, N, B=3, use_table=False):
    model.eval()
    x = torch.randn(12, B, N)
    T = torch.export.Dim("T", min=1, max=4096)
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if use_table:  # the plain torch.onnx.export call with this package's table
            torch.onnx.export(model, (x,), path, dynamo=True, dynamic_shapes=({0: T},),
                              custom_translation_table=quasirnn.onnx.translation_table())
        else:
            quasirnn.onnx.export(model, (x,), path, dynamic_shapes=({0: T},))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for length in LENGTHS:
        xx = torch.randn(length, B, N)
        got = session.run(None, {name: xx.numpy()})
        with torch.no_grad():
            want = torch.utils._pytree.tree_leaves(model(xx))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == tuple(w.shape)
            torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["f", "fo", "ifo"])
def test_qrnn_bidirectional_window2_two_layers(pooling, tmp_path):
    torch.manual_seed(0)
    _check(Plain(QRNN(5, 8, 2, bidirectional=True, window=2, pooling=pooling)), tmp_path, 5)


def test_qrnn_with_torch_onnx_export_and_translation_table(tmp_path):
    torch.manual_seed(1)
    _check(Plain(QRNN(4, 6, 3, window=(3, 2, 1), pooling="fo")), tmp_path, 4, use_table=True)


def test_qrnn_returning_its_state_and_eval_zoneout(tmp_path):
    """The QRNNState output flattens to h_n, c_n and the history; zoneout_eval's mask exports too."""
    torch.manual_seed(2)
    _check(QRNN(4, 6, 2, window=2, zoneout=0.25, zoneout_eval=True, proj_size=3), tmp_path, 4)


@pytest.mark.parametrize("options", [{}, {"use_tanh": True, "bidirectional": True}, {"recurrent_gate": False},
                                     {"layer_norm": True, "num_layers": 3}],
                         ids=["default", "tanh_bi", "no_recurrent_gate", "layer_norm"])
def test_sru(options, tmp_path):
    torch.manual_seed(3)
    options = {"num_layers": 2, **options}
    _check(Plain(SRU(5, 5, **options)), tmp_path, 5)
