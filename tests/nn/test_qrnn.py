"""QRNN / QRNNLayer: streaming state, causality, weight layout, bidirectional and layout
options, zoneout and dropout, hx handling, input validation, and numba vs reference backends."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from quasirnn import QRNN, QRNNLayer, QRNNState
from quasirnn.ops import GATE_COUNTS, forget_mult_reference

POOLING_NAMES = tuple(GATE_COUNTS)
F64 = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _model(input_size=3, hidden_size=5, **kwargs) -> QRNN:
    return QRNN(input_size, hidden_size, **kwargs).double()


def _assert_states_close(a: QRNNState, b: QRNNState, **tol):
    torch.testing.assert_close(a.c, b.c, **tol)
    assert len(a.inputs) == len(b.inputs)
    for x, y in zip(a.inputs, b.inputs):
        torch.testing.assert_close(x, y, **tol)


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("pooling", POOLING_NAMES)
@pytest.mark.parametrize("window", [1, 2, 3])
def test_streaming_split_equals_full_sequence(window, pooling):
    model = _model(num_layers=2, window=window, pooling=pooling)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    full, full_state = model(x)
    # t = 1 < window - 1 when window = 3: the first chunk is shorter than the history.
    for t in sorted({1, 2, window - 1, 5, 7} - {0}):
        first, state = model(x[:t])
        second, state = model(x[t:], state)
        torch.testing.assert_close(torch.cat([first, second]), full, **F64)
        _assert_states_close(state, full_state, **F64)


@pytest.mark.parametrize("pooling", POOLING_NAMES)
@pytest.mark.parametrize("window", [1, 2, 3])
def test_step_by_step_decoding_equals_full_sequence(window, pooling):
    model = _model(num_layers=2, window=window, pooling=pooling)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    hx = torch.randn(2, 2, 5, dtype=torch.float64)  # start from non-zero memories
    full, full_state = model(x, hx)
    state, outs = hx, []
    for t in range(x.shape[0]):
        out, state = model(x[t : t + 1], state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), full, **F64)
    _assert_states_close(state, full_state, **F64)


def test_streaming_state_layout():
    model = _model(input_size=3, hidden_size=5, num_layers=2, window=3)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    out, state = model(x)
    assert state.c.shape == (2, 2, 5)
    assert [tuple(h.shape) for h in state.inputs] == [(2, 2, 3), (2, 2, 5)]
    torch.testing.assert_close(state.inputs[0], x[-2:], rtol=0, atol=0)  # oldest first
    h0, _, _ = model.layers[0](x)
    torch.testing.assert_close(state.inputs[1], h0[-2:], rtol=0, atol=0)  # layer 1 reads layer 0's h
    # A first chunk shorter than the history: zeros pad the front.
    _, short = model(x[:1])
    torch.testing.assert_close(short.inputs[0], torch.cat([torch.zeros(1, 2, 3, dtype=torch.float64), x[:1]]))


def test_streaming_unbatched_and_batch_first():
    model = _model(num_layers=2, window=2, batch_first=True)
    x = torch.randn(2, 6, 3, dtype=torch.float64)  # (B, T, N)
    full, _ = model(x)
    a, s = model(x[:, :2])
    b, _ = model(x[:, 2:], s)
    torch.testing.assert_close(torch.cat([a, b], dim=1), full, **F64)
    # Unbatched (T, N)
    u = x[0].clone()
    a, s = model(u[:3])
    assert s.c.shape == (2, 5) and [tuple(h.shape) for h in s.inputs] == [(1, 3), (1, 5)]
    b, _ = model(u[3:], s)
    torch.testing.assert_close(torch.cat([a, b]), full[0], **F64)


# --------------------------------------------------------------------------- causality


@pytest.mark.parametrize("window", [1, 2, 3])
def test_future_inputs_do_not_change_past_outputs(window):
    model = _model(num_layers=2, window=window)
    x = torch.randn(9, 2, 3, dtype=torch.float64)
    y, _ = model(x)
    for t in (1, 4, 8):
        x2 = x.clone()
        x2[t:] += torch.randn_like(x2[t:])
        y2, _ = model(x2)
        torch.testing.assert_close(y2[:t], y[:t], rtol=0, atol=1e-14)
        assert not torch.allclose(y2[t], y[t]), "perturbing x[t] should change output[t]"


@pytest.mark.parametrize("window", [1, 2, 3])
def test_jacobian_is_lower_triangular_in_time(window):
    model = _model(input_size=2, hidden_size=3, num_layers=2, window=window)
    x = torch.randn(6, 1, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda x: model(x)[0], x)  # (T, 1, H, T', 1, N)
    dep = jac.abs().sum(dim=(1, 2, 4, 5))  # (T, T'): how much output t depends on input t'
    T = x.shape[0]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    assert torch.all(dep[future] == 0)
    assert torch.all(dep[~future] > 0)  # every past input reaches the output (recurrence)


def test_bidirectional_halves_are_causal_and_anticausal():
    model = _model(num_layers=1, window=2, bidirectional=True)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    y, _ = model(x)
    t = 4
    x_future = x.clone()
    x_future[t:] += 1.0
    y_future, _ = model(x_future)
    torch.testing.assert_close(y_future[:t, :, :5], y[:t, :, :5], rtol=0, atol=1e-14)
    assert not torch.allclose(y_future[:t, :, 5:], y[:t, :, 5:])
    x_past = x.clone()
    x_past[:t] += 1.0
    y_past, _ = model(x_past)
    torch.testing.assert_close(y_past[t:, :, 5:], y[t:, :, 5:], rtol=0, atol=1e-14)


# --------------------------------------------------------------------------- weight layout


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (3, False), (2, True)])
@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_linear_shapes(pooling, num_layers, bidirectional):
    model = QRNN(3, 5, num_layers=num_layers, window=2, pooling=pooling, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    assert len(model.layers) == num_layers * D
    for idx, layer in enumerate(model.layers):
        assert isinstance(layer, QRNNLayer)
        assert isinstance(layer.linear, nn.Linear)
        n_in = 3 if idx < D else D * 5
        assert layer.linear.in_features == 2 * n_in
        assert layer.linear.out_features == GATE_COUNTS[pooling] * 5
        assert layer.linear.bias is not None
    assert all(layer.linear.bias is None for layer in QRNN(3, 5, bias=False).layers)


@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_layer_output_recomputed_by_hand(pooling):
    """linear(window oldest first, zeros before the start) -> Z, F, O, I -> tanh/sigmoid -> pooling."""
    N, H, T, B = 3, 4, 5, 2
    model = _model(N, H, num_layers=1, window=2, pooling=pooling)
    x = torch.randn(T, B, N, dtype=torch.float64)
    c0 = torch.randn(1, B, H, dtype=torch.float64)
    out, state = model(x, c0)

    W, b = model.layers[0].linear.weight, model.layers[0].linear.bias
    x_prev = torch.cat([torch.zeros(1, B, N, dtype=torch.float64), x[:-1]])
    gates = torch.cat([x_prev, x], dim=-1) @ W.T + b
    parts = gates.split(H, dim=-1)
    assert len(parts) == GATE_COUNTS[pooling]
    z, f = torch.tanh(parts[0]), torch.sigmoid(parts[1])
    i = torch.sigmoid(parts[3]) if pooling == "ifo" else None
    c = forget_mult_reference(f, z, c0[0], i=i)
    h = c if pooling == "f" else torch.sigmoid(parts[2]) * c

    torch.testing.assert_close(out, h, **F64)
    torch.testing.assert_close(state.c[0], c[-1], **F64)
    torch.testing.assert_close(state.inputs[0], x[-1:], rtol=0, atol=0)


def test_layer_forward_matches_qrnn_layer_zero():
    model = _model(num_layers=1, window=3, pooling="ifo")
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    h, c_last, last_inputs = model.layers[0](x)
    out, state = model(x)
    torch.testing.assert_close(h, out, rtol=0, atol=0)
    torch.testing.assert_close(c_last, state.c[0], rtol=0, atol=0)
    torch.testing.assert_close(last_inputs, state.inputs[0], rtol=0, atol=0)


def _layer_grads(layer, x):
    h, c_last, _ = layer(x)
    loss = (h.sin().sum() + c_last.sum())
    return (h, c_last, *torch.autograd.grad(loss, (x, *layer.parameters())))


@pytest.mark.parametrize("pooling", list(GATE_COUNTS))
def test_layer_with_its_bias_in_the_kernel_equals_the_projection_with_bias(pooling):
    """On the CPU the layer leaves the convolution's bias to the pooling kernel; outputs and all
    gradients equal those of the projection adding it (the layer's own ``gates``)."""
    layer = QRNNLayer(3, 5, window=2, pooling=pooling).double()
    assert layer._fused_bias() is layer.linear.bias
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    fused = _layer_grads(layer, x)
    layer._fused_bias = lambda: None  # the projection adds it, as on a GPU
    torch.testing.assert_close(fused, _layer_grads(layer, x), rtol=1e-12, atol=1e-12)
    with_bias, _ = layer.gates(x)  # the public pre-activations include the bias
    without, _ = layer._gates(x, None, None, None, False)
    torch.testing.assert_close(with_bias, without + layer.linear.bias, rtol=1e-12, atol=1e-12)


def test_a_wrapped_projection_runs_as_a_module_bias_included():
    """A hooked (or replaced) ``linear`` is called as a module: its hooks run and its bias counts."""
    layer = QRNNLayer(3, 4).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    expected, _, _ = layer(x)
    calls = []
    layer.linear.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    assert layer._fused_bias() is None
    h, _, _ = layer(x)
    assert calls == [(5, 2, 12)]
    torch.testing.assert_close(h, expected, rtol=1e-12, atol=1e-12)
    quantized = torch.ao.quantization.quantize_dynamic(QRNNLayer(3, 4).eval(), {nn.Linear}, dtype=torch.qint8)
    assert quantized._fused_bias() is None and quantized(x.float())[0].shape == (5, 2, 4)


# --------------------------------------------------------------------------- bidirectional / layouts


def test_bidirectional_shapes():
    model = _model(3, 4, num_layers=2, window=2, bidirectional=True)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, state = model(x)
    assert out.shape == (6, 2, 8)
    assert state.c.shape == (4, 2, 4)
    assert [tuple(h.shape) for h in state.inputs] == [(1, 2, 3), (1, 2, 3), (1, 2, 8), (1, 2, 8)]


@pytest.mark.parametrize("window", [1, 2])
def test_bidirectional_halves_equal_unidirectional_models(window):
    bi = _model(3, 4, num_layers=1, window=window, pooling="fo", bidirectional=True)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    c0 = torch.randn(2, 2, 4, dtype=torch.float64)
    out, state = bi(x, c0)

    fwd = _model(3, 4, num_layers=1, window=window, pooling="fo")
    fwd.layers[0].load_state_dict(bi.layers[0].state_dict())
    f_out, f_state = fwd(x, c0[:1])
    bwd = _model(3, 4, num_layers=1, window=window, pooling="fo")
    bwd.layers[0].load_state_dict(bi.layers[1].state_dict())
    b_out, b_state = bwd(x.flip(0), c0[1:])

    torch.testing.assert_close(out[..., :4], f_out, **F64)
    torch.testing.assert_close(out[..., 4:], b_out.flip(0), **F64)
    torch.testing.assert_close(state.c, torch.cat([f_state.c, b_state.c]), **F64)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_batch_first_and_unbatched_match_time_major(bidirectional):
    kwargs = dict(num_layers=2, window=2, pooling="ifo", bidirectional=bidirectional)
    model = _model(**kwargs)
    model_bf = _model(batch_first=True, **kwargs)
    model_bf.load_state_dict(model.state_dict())
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    out, state = model(x)

    out_bf, state_bf = model_bf(x.transpose(0, 1).contiguous())
    torch.testing.assert_close(out_bf.transpose(0, 1), out, **F64)
    _assert_states_close(state_bf, state, **F64)  # state stays (L*D, B, H) like nn.LSTM

    for b in range(3):
        for m in (model, model_bf):  # batch_first does not apply to unbatched (T, N) input
            out_u, state_u = m(x[:, b])
            torch.testing.assert_close(out_u, out[:, b], **F64)
            torch.testing.assert_close(state_u.c, state.c[:, b], **F64)
            for hu, h in zip(state_u.inputs, state.inputs):
                torch.testing.assert_close(hu, h[:, b], **F64)


# --------------------------------------------------------------------------- zoneout / dropout


@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_zoneout_has_no_effect_in_eval(pooling):
    model = _model(num_layers=2, pooling=pooling, zoneout=0.5).eval()
    plain = _model(num_layers=2, pooling=pooling, zoneout=0.0).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out1, s1 = model(x)
    out2, s2 = model(x)
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)
    torch.testing.assert_close(out1, plain(x)[0], rtol=0, atol=0)
    torch.testing.assert_close(s1.c, plain(x)[1].c, rtol=0, atol=0)


@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_zoneout_is_active_in_training(pooling):
    model = _model(num_layers=1, pooling=pooling, zoneout=0.5).train()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    eval_out = model.eval()(x)[0]
    model.train()
    a, b = model(x)[0], model(x)[0]
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, eval_out)


@pytest.mark.parametrize("pooling", POOLING_NAMES)
def test_near_total_zoneout_keeps_memory(pooling):
    """zoneout = p is the probability that a channel keeps its previous memory: with p = 0.999
    the memory after 5 steps is (almost everywhere) exactly the initial one."""
    T, B, H = 5, 4, 64
    model = _model(3, H, num_layers=1, pooling=pooling, zoneout=0.999).train()
    c0 = torch.randn(1, B, H, dtype=torch.float64)
    x = torch.randn(T, B, 3, dtype=torch.float64)
    _, state = model(x, c0)
    changed = (state.c != c0).double().mean().item()
    assert changed < 0.03, f"{changed:.1%} of the memory changed"
    _, eval_state = model.eval()(x, c0)
    assert (eval_state.c != c0).double().mean().item() > 0.9  # without zoneout it does change


def test_dropout_only_between_layers_and_only_in_training():
    model = _model(3, 16, num_layers=2, dropout=0.5)
    plain = _model(3, 16, num_layers=2, dropout=0.0)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(6, 2, 3, dtype=torch.float64)

    model.eval()
    out_eval, state_eval = model(x)
    torch.testing.assert_close(out_eval, model(x)[0], rtol=0, atol=0)
    torch.testing.assert_close(out_eval, plain(x)[0], rtol=0, atol=0)

    model.train()
    out_a, state_a = model(x)
    out_b, _ = model(x)
    assert not torch.allclose(out_a, out_b)
    assert not torch.allclose(out_a, out_eval)
    # The first layer's own memory is not touched by dropout; the second layer's input is.
    torch.testing.assert_close(state_a.c[0], state_eval.c[0], rtol=0, atol=0)
    assert not torch.allclose(state_a.c[1], state_eval.c[1])


def test_dropout_not_applied_after_last_layer():
    model = _model(3, 16, num_layers=1, dropout=0.9).train()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out_train = model(x)[0]
    torch.testing.assert_close(out_train, model.eval()(x)[0], rtol=0, atol=0)


# --------------------------------------------------------------------------- hx


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("window", [1, 2])
def test_hx_tensor_equals_state_with_empty_history(window, bidirectional):
    model = _model(3, 5, num_layers=2, window=window, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    c0 = torch.randn(2 * D, 2, 5, dtype=torch.float64)
    sizes = [3] * D + [D * 5] * D
    history = tuple(torch.zeros(window - 1, 2, n, dtype=torch.float64) for n in sizes)
    out_t, state_t = model(x, c0)
    out_s, state_s = model(x, QRNNState(c0, history))
    out_tuple, _ = model(x, (c0, history))  # a plain tuple works like the NamedTuple
    torch.testing.assert_close(out_t, out_s, rtol=0, atol=0)
    torch.testing.assert_close(out_t, out_tuple, rtol=0, atol=0)
    _assert_states_close(state_t, state_s, rtol=0, atol=0)
    # and the initial memories matter
    assert not torch.allclose(out_t, model(x)[0])
    torch.testing.assert_close(model(x)[0], model(x, torch.zeros_like(c0))[0], rtol=0, atol=0)


def test_state_detach():
    model = _model(num_layers=2, window=2)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    _, state = model(x)
    assert state.c.grad_fn is not None
    assert all(h.grad_fn is not None for h in state.inputs)
    detached = state.detach()
    assert isinstance(detached, QRNNState)
    assert detached.c.grad_fn is None and not detached.c.requires_grad
    assert all(h.grad_fn is None and not h.requires_grad for h in detached.inputs)
    _assert_states_close(detached, state, rtol=0, atol=0)
    # Truncated BPTT: the next chunk's gradient does not reach the previous chunk.
    out, _ = model(torch.randn(3, 2, 3, dtype=torch.float64), detached)
    out.sum().backward()
    assert x.grad is None


# --------------------------------------------------------------------------- errors


@pytest.fixture
def small():
    return QRNN(3, 5, num_layers=2, window=2)


@pytest.mark.parametrize("shape", [(5, 2, 4), (5, 4), (7,), (2, 5, 2, 3)])
def test_rejects_wrong_input_shape(small, shape):
    with pytest.raises(ValueError, match=r"shape \(T, B, N\) or unbatched \(T, N\) with N = input_size = 3, got shape"):
        small(torch.randn(shape))


def test_rejects_wrong_input_shape_batch_first():
    with pytest.raises(ValueError, match=r"\(B, T, N\).*input_size = 3, got shape \(2, 5, 4\)"):
        QRNN(3, 5, batch_first=True)(torch.randn(2, 5, 4))


def test_rejects_empty_sequence(small):
    with pytest.raises(ValueError, match=r"at least one time step"):
        small(torch.randn(0, 2, 3))


def test_rejects_non_float_input(small):
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch.int64"):
        small(torch.ones(5, 2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"must be a torch.Tensor, got list"):
        small([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("shape", [(1, 2, 5), (2, 3, 5), (2, 2, 4), (2, 5)])
def test_rejects_wrong_hx_shape(small, shape):
    with pytest.raises(ValueError, match=r"hx memories must have shape \(num_layers\*D, B, H\) = \(2, 2, 5\), got"):
        small(torch.randn(4, 2, 3), torch.randn(shape))


def test_rejects_wrong_hx_type_and_history(small):
    x = torch.randn(4, 2, 3)
    c0 = torch.zeros(2, 2, 5)
    with pytest.raises(TypeError, match=r"hx must be None, a tensor of initial memories, or the RecurrentState"):
        small(x, [c0])
    with pytest.raises(ValueError, match=r"hx.inputs must hold 2 tensors"):
        small(x, QRNNState(c0, (torch.zeros(1, 2, 3),)))
    with pytest.raises(ValueError, match=r"hx.inputs\[1\] must have shape \(window-1, B, N_l\) = \(1, 2, 5\), got \(1, 2, 3\)"):
        small(x, QRNNState(c0, (torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))))


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(hidden_size=0), r"hidden_size must be an integer >= 1, got 0"),
        (dict(input_size=0), r"input_size must be an integer >= 1, got 0"),
        (dict(window=0), r"window must be an integer >= 1, got 0"),
        (dict(window=2.0), r"window must be an integer >= 1, got 2.0"),
        (dict(num_layers=0), r"num_layers must be an integer >= 1, got 0"),
        (dict(pooling="x"), r"pooling must be one of \('f', 'fo', 'ifo'\), got 'x'"),
        (dict(zoneout=1.0), r"zoneout must be a probability in \[0, 1\), got 1.0"),
        (dict(zoneout=-0.1), r"zoneout must be a probability in \[0, 1\), got -0.1"),
        (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\), got 1.0"),
    ],
)
def test_rejects_invalid_constructor_args(kwargs, pattern):
    args = dict(input_size=3, hidden_size=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        QRNN(**args)


# --------------------------------------------------------------------------- numba vs reference


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    T=st.integers(1, 12),
    B=st.integers(1, 4),
    window=st.integers(1, 3),
    pooling=st.sampled_from(POOLING_NAMES),
    num_layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_cpp_backend_matches_reference(T, B, window, pooling, num_layers, bidirectional, seed):
    torch.manual_seed(seed)
    kwargs = dict(num_layers=num_layers, window=window, pooling=pooling, bidirectional=bidirectional)
    fast = _model(3, 6, backend="cpu", **kwargs)
    ref = _model(3, 6, backend="reference", **kwargs)
    ref.load_state_dict(fast.state_dict())
    D = 2 if bidirectional else 1
    x = torch.randn(T, B, 3, dtype=torch.float64)
    c0 = torch.randn(num_layers * D, B, 6, dtype=torch.float64)
    grad_out = torch.randn(T, B, D * 6, dtype=torch.float64)
    results = []
    for m in (fast, ref):
        xx = x.clone().requires_grad_()
        out, state = m(xx, c0)
        loss = (out * grad_out).sum() + state.c.sum()
        results.append((out, state, torch.autograd.grad(loss, [xx, *m.parameters()])))
    (out, state, grads), (r_out, r_state, r_grads) = results
    torch.testing.assert_close(out, r_out, **F64)
    _assert_states_close(state, r_state, **F64)
    for g, rg in zip(grads, r_grads):
        torch.testing.assert_close(g, rg, **F64)
