"""quasirnn.onnx.export(..., with_state=True) and quasirnn.onnx.Stream (issue 34 item 3): the graph
takes and returns the memories and the convolution history, so a stream run in onnxruntime chunk by
chunk, or one step at a time, gives the full-sequence PyTorch output (1e-5), at a sequence length and
a batch size other than the traced ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import quasirnn.onnx  # noqa: E402
from quasirnn import QRNN, SRU  # noqa: E402


def _session(model, N, batch_first=False):
    x = torch.randn(3, 12, N) if batch_first else torch.randn(12, 3, N)  # traced at T = 12, B = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = quasirnn.onnx.export(model, (x,), with_state=True)
    return ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _stream_matches(model, session, N, chunks, B=2, batch_first=False):
    T = sum(chunks)
    x = torch.randn(B, T, N) if batch_first else torch.randn(T, B, N)
    with torch.no_grad():
        want, (h_n, c_n) = model(x)
    stream = quasirnn.onnx.Stream(session, batch_size=B)
    outputs, start = [], 0
    for length in chunks:
        piece = x[:, start:start + length] if batch_first else x[start:start + length]
        outputs.append(stream(piece.numpy()))
        start += length
    got = torch.from_numpy(np.concatenate(outputs, axis=1 if batch_first else 0))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(stream.state["c_0"]), c_n, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(stream.h_n), h_n, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window", [1, 2, (3, 1)], ids=["window1", "window2", "window3_1"])
def test_qrnn_chunk_by_chunk_and_step_by_step(window):
    torch.manual_seed(0)
    model = QRNN(5, 8, 2, window=window).eval()
    session = _session(model, 5)
    _stream_matches(model, session, 5, [4, 1, 9, 2])  # chunks of several lengths, one of one step
    _stream_matches(model, session, 5, [1] * 9, B=1)  # step by step, one sequence
    _stream_matches(model, session, 5, [20], B=4)  # the whole sequence in one call


def test_qrnn_graph_names_the_state():
    torch.manual_seed(1)
    model = QRNN(4, 6, 3, window=(2, 1, 3), pooling="ifo", proj_size=3).eval()
    session = _session(model, 4)
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(inputs) == ["input", "c_0", "history_0", "history_2"]
    assert list(outputs) == ["output", "h_n", "c_n", "history_0_n", "history_2_n"]
    assert inputs["c_0"][0] == 3 and inputs["c_0"][2] == 6
    assert inputs["history_0"][0] == 1 and inputs["history_2"][0] == 2 and inputs["history_2"][2] == 3
    assert outputs["h_n"][2] == 3
    _stream_matches(model, session, 4, [2, 1, 6])  # a window of 3 across chunks shorter than it


def test_dense_qrnn_with_eval_zoneout():
    torch.manual_seed(5)
    model = QRNN(4, 6, 2, window=2, dense=True, zoneout=0.25, zoneout_eval=True).eval()
    _stream_matches(model, _session(model, 4), 4, [3, 1, 5])


@pytest.mark.parametrize("options", [{}, {"use_tanh": True, "layer_norm": True}], ids=["default", "tanh_layer_norm"])
def test_sru_chunk_by_chunk(options):
    torch.manual_seed(2)
    model = SRU(5, 6, 2, **options).eval()
    session = _session(model, 5)
    assert [i.name for i in session.get_inputs()] == ["input", "c_0"]
    _stream_matches(model, session, 5, [3, 1, 7])
    _stream_matches(model, session, 5, [1] * 5, B=1)


def test_batch_first():
    torch.manual_seed(3)
    model = QRNN(4, 6, 2, window=2, batch_first=True).eval()
    _stream_matches(model, _session(model, 4, batch_first=True), 4, [5, 1, 3], batch_first=True)


def test_bad_requests_name_what_was_expected():
    with pytest.raises(ValueError, match="unidirectional"):
        quasirnn.onnx.export(QRNN(4, 6, bidirectional=True), (torch.randn(5, 2, 4),), with_state=True)
    with pytest.raises(TypeError, match="QRNN or quasirnn.SRU"):
        quasirnn.onnx.export(torch.nn.LSTM(4, 6), (torch.randn(5, 2, 4),), with_state=True)
    with pytest.raises(ValueError, match="batched"):
        quasirnn.onnx.export(QRNN(4, 6), (torch.randn(5, 4),), with_state=True)
    with pytest.raises(ValueError, match="dynamic_shapes"):
        quasirnn.onnx.export(QRNN(4, 6), (torch.randn(5, 2, 4),), with_state=True, dynamic_shapes=({0: 5},))


def test_int8_dynamic_quantisation_of_the_exported_file(tmp_path):
    """The int8 route: onnxruntime's quantize_dynamic on the file (uint8 weights, see
    benchmarks/onnx_speed.py) streams chunk by chunk like the float32 one, within 5 % of eager."""
    onnx = pytest.importorskip("onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(4)
    model = QRNN(16, 32, 2, window=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quasirnn.onnx.export(model, (torch.randn(12, 3, 16),), tmp_path / "qrnn.onnx", with_state=True)
    quantize_dynamic(tmp_path / "qrnn.onnx", tmp_path / "qrnn_int8.onnx", weight_type=QuantType.QUInt8)
    assert "MatMulInteger" in {n.op_type for n in onnx.load(tmp_path / "qrnn_int8.onnx").graph.node}
    stream = quasirnn.onnx.Stream(ort.InferenceSession(str(tmp_path / "qrnn_int8.onnx"),
                                                       providers=["CPUExecutionProvider"]), batch_size=2)
    x = torch.randn(16, 2, 16)
    with torch.no_grad():
        want = model(x)[0]
    got = torch.from_numpy(np.concatenate([stream(x[:5].numpy()), stream(x[5:6].numpy()), stream(x[6:].numpy())]))
    error = float((got - want).abs().max() / want.abs().max())
    assert 0 < error < 5e-2
