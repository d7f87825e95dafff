"""SRU / SRULayer: the layer recomputed from its weights and the equations, both recurrent-gate
forms and both g, layer norm, state continuation, bidirectional and layout options, hx forms,
weight layout and initialisation, input validation, numba vs PyTorch vs reference backends."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quasirnn import SRU, QRNNState, SRULayer
from quasirnn.ops import sru_recurrence_reference

F64 = dict(rtol=1e-10, atol=1e-10)
OPTIONS = [
    dict(),
    dict(recurrent_gate=False),
    dict(use_tanh=True),
    dict(recurrent_gate=False, use_tanh=True, layer_norm=True),
    dict(layer_norm=True, highway_bias=-1.0),
]
OPTION_IDS = ["published", "no-v", "tanh", "no-v+tanh+ln", "ln+hb"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _model(input_size=3, hidden_size=5, **kwargs) -> SRU:
    model = SRU(input_size, hidden_size, **kwargs).double()
    with torch.no_grad():  # non-zero biases and layer-norm affine, so every parameter matters
        for name, p in model.named_parameters():
            if name.endswith(("bias", "norm.weight")):
                p.add_(0.3 * torch.randn_like(p))
    return model


def _layer_by_hand(layer: SRULayer, x: torch.Tensor, c0: torch.Tensor):
    """One layer from its weights: LayerNorm, projection, then the plain-loop reference."""
    u = (layer.norm(x) if layer.norm is not None else x) @ layer.linear.weight.t()
    highway = None if layer.projects_skip else x
    return sru_recurrence_reference(u, layer.v, layer.bias, c0, x=highway, use_tanh=layer.use_tanh)


# --------------------------------------------------------------------------- the equations


@pytest.mark.parametrize("input_size", [5, 3], ids=["N=H", "N!=H"])
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_layer_matches_the_equations(options, input_size):
    model = _model(input_size, 5, num_layers=1, **options)
    layer = model.layers[0]
    x = torch.randn(6, 2, input_size, dtype=torch.float64)
    c0 = torch.randn(1, 2, 5, dtype=torch.float64)
    out, state = model(x, c0)
    h, c = _layer_by_hand(layer, x, c0[0])
    torch.testing.assert_close(out, h, **F64)
    torch.testing.assert_close(state.c[0], c[-1], **F64)
    # gradients through every parameter agree too
    grad_out = torch.randn_like(out)
    params = list(model.parameters())
    grads = torch.autograd.grad(out, params, grad_out)
    ref_grads = torch.autograd.grad(h, params, grad_out)
    for (name, _), g, rg in zip(model.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(g, rg, **F64, msg=lambda m, name=name: f"grad of {name}: {m}")


def test_highway_is_the_input_when_sizes_match():
    """With r → 0 (b_r very negative) the output is the input itself; with N ≠ H it is the
    fourth projection block."""
    same = _model(4, 4, num_layers=1, highway_bias=-60.0)
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    with torch.no_grad():
        same.layers[0].bias[1].fill_(-60.0)
    torch.testing.assert_close(same(x)[0], x, rtol=0, atol=1e-20)
    proj = _model(3, 4, num_layers=1)
    with torch.no_grad():
        proj.layers[0].bias[1].fill_(-60.0)
    x3 = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(proj(x3)[0], x3 @ proj.layers[0].linear.weight[12:].t(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("recurrent_gate", [True, False])
@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_backends_match_reference_model(backend, recurrent_gate):
    kwargs = dict(num_layers=2, bidirectional=True, recurrent_gate=recurrent_gate, layer_norm=True)
    model = SRU(3, 300, backend=backend, **kwargs)  # H = 300 crosses the numba kernel's block
    ref = SRU(3, 300, backend="reference", **kwargs)
    ref.load_state_dict(model.state_dict())
    x = torch.randn(7, 2, 3)
    out, state = model(x)
    ref_out, ref_state = ref(x)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.c, ref_state.c, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    ref_grads = torch.autograd.grad(ref_out.sum(), list(ref.parameters()))
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- state and causality


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_streaming_split_equals_full_sequence(options):
    model = _model(num_layers=2, **options)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    hx = torch.randn(2, 2, 5, dtype=torch.float64)
    full, full_state = model(x, hx)
    for t in (1, 3, 7):
        first, state = model(x[:t], hx)
        second, state = model(x[t:], state)
        torch.testing.assert_close(torch.cat([first, second]), full, **F64)
        torch.testing.assert_close(state.c, full_state.c, **F64)


def test_step_by_step_decoding_equals_full_sequence():
    model = _model(num_layers=3)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    full, full_state = model(x)
    state, outs = None, []
    for t in range(6):
        out, state = model(x[t : t + 1], state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), full, **F64)
    torch.testing.assert_close(state.c, full_state.c, **F64)


def test_state_contract_and_hx_forms():
    model = _model(3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    out, state = model(x)
    assert isinstance(state, QRNNState)
    assert state.c.shape == (4, 2, 5)
    assert [tuple(h.shape) for h in state.inputs] == [(0, 2, 3), (0, 2, 3), (0, 2, 10), (0, 2, 10)]
    # a tensor, the returned state and a plain (c, inputs) tuple all continue alike
    a, _ = model(x, state.c)
    b, _ = model(x, state)
    c, _ = model(x, (state.c, state.inputs))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    assert not torch.allclose(a, out)  # the state is used
    detached = state.detach()
    assert not detached.c.requires_grad


def test_future_inputs_do_not_change_past_outputs():
    model = _model(num_layers=2)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    y, _ = model(x)
    x2 = x.clone()
    x2[5:] += 1.0
    y2, _ = model(x2)
    torch.testing.assert_close(y2[:5], y[:5], rtol=0, atol=0)
    assert not torch.allclose(y2[5:], y[5:])


# --------------------------------------------------------------------------- bidirectional, layouts


def test_bidirectional_halves_equal_unidirectional_models():
    bi = _model(3, 4, num_layers=1, bidirectional=True)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    c0 = torch.randn(2, 2, 4, dtype=torch.float64)
    out, state = bi(x, c0)
    assert out.shape == (6, 2, 8)
    fwd, bwd = _model(3, 4, num_layers=1), _model(3, 4, num_layers=1)
    fwd.layers[0].load_state_dict(bi.layers[0].state_dict())
    bwd.layers[0].load_state_dict(bi.layers[1].state_dict())
    f_out, f_state = fwd(x, c0[:1])
    b_out, b_state = bwd(x.flip(0), c0[1:])
    torch.testing.assert_close(out[..., :4], f_out, **F64)
    torch.testing.assert_close(out[..., 4:], b_out.flip(0), **F64)
    torch.testing.assert_close(state.c, torch.cat([f_state.c, b_state.c]), **F64)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_batch_first_and_unbatched_match_time_major(bidirectional):
    kwargs = dict(num_layers=2, bidirectional=bidirectional)
    model, model_bf = _model(**kwargs), _model(batch_first=True, **kwargs)
    model_bf.load_state_dict(model.state_dict())
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    out, state = model(x)
    out_bf, state_bf = model_bf(x.transpose(0, 1))  # a strided batch-major view, read as is
    torch.testing.assert_close(out_bf.transpose(0, 1), out, **F64)
    torch.testing.assert_close(state_bf.c, state.c, **F64)
    out_u, state_u = model(x[:, 1])
    torch.testing.assert_close(out_u, out[:, 1], **F64)
    torch.testing.assert_close(state_u.c, state.c[:, 1], **F64)


def test_dropout_between_layers_only_in_training():
    model = _model(num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0], rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("bidirectional", [False, True])
def test_weight_layout_and_initialisation(bidirectional):
    model = SRU(3, 5, num_layers=2, bidirectional=bidirectional, highway_bias=-2.0, layer_norm=True)
    D = 2 if bidirectional else 1
    assert len(model.layers) == 2 * D
    for idx, layer in enumerate(model.layers):
        n = 3 if idx < D else 5 * D
        k = 3 if n == 5 else 4  # a highway projection block when N_l != H
        assert layer.linear.weight.shape == (k * 5, n) and layer.linear.bias is None
        assert layer.v.shape == (2, 5) and layer.bias.shape == (2, 5)
        assert torch.equal(layer.bias[0], torch.zeros(5)) and torch.equal(layer.bias[1], torch.full((5,), -2.0))
        assert isinstance(layer.norm, nn.LayerNorm) and layer.norm.normalized_shape == (n,)
        bound = (3.0 / n) ** 0.5
        assert layer.linear.weight.abs().max() <= bound
        assert layer.v.abs().max() <= 1.5**0.5
    names = {name for name, _ in model.named_parameters()}
    assert "layers.0.linear.weight" in names and "layers.0.v" in names and "layers.0.bias" in names
    no_v = SRU(3, 5, num_layers=1, recurrent_gate=False)
    assert no_v.layers[0].v is None and "layers.0.v" not in dict(no_v.named_parameters())


def test_trains_on_cpu_with_gradients_everywhere():
    model = SRU(4, 6, num_layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = torch.randn(12, 3, 4)
    target = torch.randn(12, 3, 6)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((model(x)[0] - target) ** 2).mean()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# --------------------------------------------------------------------------- validation


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"num_layers must be an integer >= 1, got 0"):
        SRU(3, 4, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.5"):
        SRU(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match=r"hidden_size must be an integer >= 1, got 0"):
        SRU(3, 0)
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'cpu', 'triton', 'torch', 'reference'\), got 'gpu'"):
        SRU(3, 4, backend="gpu")
    model = _model(3, 5, num_layers=2)
    with pytest.raises(ValueError, match=r"SRU input must have shape \(T, B, N\) or unbatched \(T, N\) with N = input_size = 3, got shape \(4, 2, 7\)"):
        model(torch.randn(4, 2, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"SRU input must have at least one time step"):
        model(torch.randn(0, 2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"SRU input must be a floating-point tensor, got dtype torch.int64"):
        model(torch.zeros(4, 2, 3, dtype=torch.long))
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"hx memories must have shape \(num_layers\*D, B, H\) = \(2, 2, 5\), got \(1, 2, 5\)"):
        model(x, torch.zeros(1, 2, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"hx must be None, a tensor of initial memories, or the RecurrentState"):
        model(x, [1, 2, 3])


def test_skip_rule_and_skip_term_accept_their_former_name_highway():
    new, old = SRU(6, 3, 2, bidirectional=True, skip_rule="sru"), SRU(6, 3, 2, bidirectional=True, highway="sru")
    assert new.skip_rule == old.skip_rule == "sru"
    assert [layer.skip_term for layer in new.layers] == [layer.skip_term for layer in old.layers] \
        == ["identity", "identity", "identity", "identity"]  # N_l = D·H = 6 in every layer
    assert [layer.skip_term for layer in SRU(6, 3, 2, bidirectional=True).layers] == ["projection"] * 4
    assert SRULayer(4, 4, highway="none").skip_term == SRULayer(4, 4, skip_term="none").skip_term == "none"
    with pytest.raises(ValueError, match="skip_rule must be one of"):
        SRU(3, 4, skip_rule="both")
    with pytest.raises(ValueError, match="skip_term must be one of"):
        SRULayer(3, 4, skip_term="both")
    with pytest.raises(ValueError, match="give skip_rule or its former name highway, not both"):
        SRU(3, 4, skip_rule="sru", highway="sru")
    with pytest.raises(ValueError, match="give skip_term or its former name highway, not both"):
        SRULayer(4, 4, skip_term="identity", highway="identity")


def test_layer_checks_its_initial_memory():
    """SRULayer runs the recurrence without sru_recurrence's checks; c0 is the one input it did not
    make, so the layer checks it (shape and dtype, one line each), and casts a float c0."""
    layer = SRULayer(3, 5).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 5\), got \(2, 4\)"):
        layer(x, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"c0 must be a floating-point tensor .*, got dtype torch.int64"):
        layer(x, torch.zeros(2, 5, dtype=torch.long))
    c0 = torch.randn(2, 5, dtype=torch.float64)
    h, c_last, _ = layer(x, c0.float())
    ref, ref_last, _ = layer(x, c0)
    torch.testing.assert_close(h, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c_last, ref_last, rtol=1e-6, atol=1e-6)


def test_a_hooked_or_quantised_projection_runs_as_a_module():
    """The layer calls a plain ``linear`` as F.linear; a hooked one as a module (its hooks run, and a
    hook that changes the output changes the layer), a quantised one too."""
    layer = SRULayer(3, 5).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    expected, _, _ = layer(x)
    calls = []
    handle = layer.linear.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    h, _, _ = layer(x)
    assert calls == [(4, 2, 20)]  # [x~, F, R, x]: N = 3 != H = 5 projects the highway
    torch.testing.assert_close(h, expected, rtol=0, atol=0)
    handle.remove()
    layer.linear.register_forward_hook(lambda module, args, out: out * 0.5)
    assert not torch.allclose(layer(x)[0], expected)
    quantized = torch.ao.quantization.quantize_dynamic(SRULayer(3, 5).eval(), {nn.Linear}, dtype=torch.qint8)
    assert quantized(x.float())[0].shape == (4, 2, 5)
