"""Stepper (nn/streaming.py): a QRNN/SRU stepped token by token or in chunks equals the module's
full-sequence forward, its state is the module's, and bad input is a one-line error."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import quasirnn
from quasirnn.nn.streaming import Stepper

ATOL = 2e-6


def _models():
    yield "qrnn-k1-fo-L1", lambda: quasirnn.QRNN(5, 6, 1)
    for k in (1, 2):
        for pooling in ("f", "fo", "ifo"):
            yield f"qrnn-k{k}-{pooling}-L2", lambda k=k, p=pooling: quasirnn.QRNN(5, 6, 2, window=k, pooling=p)
    yield "qrnn-k3-windows", lambda: quasirnn.QRNN(5, 6, 2, window=(3, 2))
    yield "qrnn-proj", lambda: quasirnn.QRNN(5, 6, 2, window=2, proj_size=4)
    yield "qrnn-nobias-zoneout-eval", lambda: quasirnn.QRNN(5, 6, 2, bias=False, window=2, pooling="ifo", zoneout=0.3,
                                                            zoneout_eval=True)
    yield "qrnn-dense", lambda: quasirnn.QRNN(5, 6, 2, window=2, dense=True)
    yield "qrnn-dense-last", lambda: quasirnn.QRNN(5, 6, 2, dense=True, dense_output="last")
    yield "sru-L1", lambda: quasirnn.SRU(5, 6, 1)
    yield "sru-L2", lambda: quasirnn.SRU(5, 6, 2)
    yield "sru-identity-tanh-rescale", lambda: quasirnn.SRU(6, 6, 2, use_tanh=True, rescale=True)
    yield "sru-norm-proj", lambda: quasirnn.SRU(5, 6, 3, layer_norm=True, projection_size=3, highway_bias=-1.0)
    yield "sru-after-v1", lambda: quasirnn.SRU(5, 6, 2, layer_norm=True, normalize_after=True,
                                               proj_input_to_hidden_first=True, v1=True)
    yield "sru-no-skip", lambda: quasirnn.SRU(5, 6, 2, has_skip_term=False)


MODELS = dict(_models())


#: int8 (dynamically quantised activations): a float rounding difference of 1e-7 in a layer's output
#: can move the next layer's input across a quantisation level (one int8 step of its scale); the
#: int8 error against float32 itself is ~1e-2
INT8_ATOL = 1e-3


def _close(a, b, atol=ATOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def _same_state(s, ref, atol=ATOL):
    _close(s.c, ref.c, atol)
    _close(s.h, ref.h, atol)
    assert len(s.inputs) == len(ref.inputs)
    for a, b in zip(s.inputs, ref.inputs):
        assert a.shape == b.shape
        _close(a, b, atol)


def _steps_equal_the_full_sequence(module, x):
    full, full_state = module(x)
    stepper, state, ys = Stepper(module), None, []
    for t in range(x.shape[0]):
        y, state = stepper.step(x[t], state)
        ys.append(y)
    _close(torch.stack(ys), full)
    _same_state(state, full_state)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_steps_equal_the_full_sequence(name, batch):
    torch.manual_seed(0)
    module = MODELS[name]().eval()
    _steps_equal_the_full_sequence(module, torch.randn(9, batch, module.input_size))


@pytest.mark.parametrize("name", ["qrnn-k2-fo-L2", "qrnn-k3-windows", "sru-L2", "qrnn-dense"])
def test_chunks_from_a_given_state_equal_the_full_sequence(name):
    torch.manual_seed(1)
    module = MODELS[name]().eval()
    x = torch.randn(12, 3, 5)
    _, start = module(torch.randn(4, 3, 5))  # a state with memories and history
    full, full_state = module(x, start)
    stepper = Stepper(module)
    y1, state = stepper.chunk(x[:5], start)
    y2, state = stepper.step(x[5], state)
    y3, state = stepper.step(x[6], state)  # a chunk after steps reads the history where they left it
    y4, state = stepper.chunk(x[7:], state)
    _close(torch.cat([y1, y2[None], y3[None], y4]), full)
    _same_state(state, full_state)


def test_long_stream_wraps_its_history_ring_exactly():
    torch.manual_seed(2)
    module = quasirnn.QRNN(3, 4, 2, window=(3, 2)).eval()
    _steps_equal_the_full_sequence(module, torch.randn(150, 2, 3))  # more steps than the ring's slots, twice


def test_state_switches_between_module_and_stepper():
    torch.manual_seed(3)
    module = quasirnn.QRNN(5, 6, 2, window=2).eval()
    x = torch.randn(10, 2, 5)
    full, full_state = module(x)
    stepper = Stepper(module)
    y0, state = module(x[:3])
    y1, state = stepper.chunk(x[3:6], state)  # the module's state into the stepper
    y2, state = module(x[6:], state)  # the stepper's state into the module
    _close(torch.cat([y0, y1, y2]), full)
    _same_state(state, full_state)


def test_batch_first_chunk_and_new_batch_size():
    torch.manual_seed(4)
    module = quasirnn.SRU(5, 6, 2, batch_first=True).eval()
    x = torch.randn(2, 7, 5)  # (B, T, N)
    stepper = Stepper(module)
    y, state = stepper.chunk(x)
    _close(y, module(x)[0])
    y1, _ = stepper.step(torch.ones(4, 5))  # another batch size: fresh buffers from zero
    _close(y1, module(torch.ones(4, 1, 5))[0][:, 0])


def test_returned_output_is_its_own_and_state_is_reused():
    module = quasirnn.QRNN(3, 4, 1).eval()
    stepper = Stepper(module)
    y1, s1 = stepper.step(torch.ones(1, 3))
    kept = y1.clone()
    y2, s2 = stepper.step(torch.ones(1, 3), s1)
    assert torch.equal(y1, kept) and not torch.equal(y1, y2)
    assert s2.c.data_ptr() == s1.c.data_ptr()  # the stepper's buffers, updated in place


def test_runs_under_inference_mode_then_outside():
    module = quasirnn.QRNN(3, 4, 2, window=2).eval()
    stepper = Stepper(module)
    with torch.inference_mode():
        _, state = stepper.step(torch.ones(2, 3))
    y, _ = stepper.step(torch.ones(2, 3), state)
    assert not y.requires_grad


@pytest.mark.parametrize("make", [lambda: quasirnn.QRNN(5, 6, 2, window=2, proj_size=4),
                                  lambda: quasirnn.QRNN(5, 6, 2, pooling="ifo"), lambda: quasirnn.SRU(5, 6, 2),
                                  lambda: quasirnn.SRU(5, 6, 2, projection_size=3)])
def test_int8_dynamic_quantised_module_steps_as_it_runs(make):
    # dynamic quantisation scales each call's activations by their own range: the stepper equals the
    # quantised module run one step per call (a full sequence quantises its activations together)
    torch.manual_seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation
        module = torch.ao.quantization.quantize_dynamic(make().eval(), {nn.Linear}, dtype=torch.qint8)
    x = torch.randn(6, 3, 5)
    stepper, state, ref_state = Stepper(module), None, None
    for t in range(6):
        y, state = stepper.step(x[t], state)
        ref, ref_state = module(x[t : t + 1], ref_state)
        _close(y, ref[0], INT8_ATOL)
    _same_state(state, ref_state, INT8_ATOL)


@pytest.mark.parametrize("make", [lambda: quasirnn.QRNN(5, 6, 2, window=2, proj_size=4), lambda: quasirnn.SRU(5, 6, 2)])
def test_int8_chunk_runs_as_the_quantised_module_on_the_chunk(make):
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.ao.quantization.quantize_dynamic(make().eval(), {nn.Linear}, dtype=torch.qint8)
    x = torch.randn(9, 2, 5)
    stepper = Stepper(module)
    y1, state = stepper.chunk(x[:4])
    y2, state = stepper.chunk(x[4:], state)
    ref1, ref_state = module(x[:4])
    ref2, ref_state = module(x[4:], ref_state)
    _close(torch.cat([y1, y2]), torch.cat([ref1, ref2]), INT8_ATOL)
    _same_state(state, ref_state, INT8_ATOL)


@pytest.mark.parametrize("bad, error, match", [
    (torch.ones(2, 4), ValueError, r"shape \(B, N\) with N = input_size = 5, got shape \(2, 4\)"),
    (torch.ones(1, 2, 5), ValueError, r"shape \(B, N\)"),
    (torch.ones(2, 5, dtype=torch.float64), TypeError, "dtype torch.float64 but the module computes in torch.float32"),
    ([1.0] * 5, TypeError, "must be a torch.Tensor, got list"),
])
def test_bad_input_is_a_one_line_error(bad, error, match):
    stepper = Stepper(quasirnn.QRNN(5, 6, 2, window=2))
    with pytest.raises(error, match=match) as info:
        stepper.step(bad)
    assert "\n" not in str(info.value)


def test_state_of_another_batch_size_is_a_one_line_error():
    module = quasirnn.QRNN(5, 6, 2, window=2).eval()
    stepper = Stepper(module)
    _, state = stepper.step(torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"hx memories must have shape \(num_layers\*D, B, H\) = \(2, 2, 6\)"):
        stepper.step(torch.ones(2, 5), state)
    with pytest.raises(ValueError, match="at least one time step"):
        stepper.chunk(torch.ones(0, 3, 5))


@pytest.mark.parametrize("module, error, match", [
    (quasirnn.QRNN(5, 6, bidirectional=True), ValueError, "unidirectional"),
    (nn.LSTM(5, 6), TypeError, "QRNN or SRU module, got LSTM"),
])
def test_modules_it_cannot_step_are_refused(module, error, match):
    with pytest.raises(error, match=match):
        Stepper(module)


@pytest.mark.parametrize("make", [lambda: quasirnn.QRNN(32, 32, 2, window=2), lambda: quasirnn.SRU(32, 32, 2)])
def test_torchao_int8_quantised_module_steps_as_it_runs(make):
    quantization = pytest.importorskip("torchao.quantization")
    torch.manual_seed(6)
    module = make().eval()
    quantization.quantize_(module, quantization.Int8DynamicActivationInt8WeightConfig())
    x = torch.randn(5, 2, 32)
    stepper, state, ref_state = Stepper(module), None, None
    with torch.inference_mode():
        for t in range(5):
            y, state = stepper.step(x[t], state)
            ref, ref_state = module(x[t : t + 1], ref_state)
            _close(y, ref[0], INT8_ATOL)
    _same_state(state, ref_state, INT8_ATOL)
