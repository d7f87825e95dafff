"""from_sru against the real ``sru`` package (2.6.0): random weights, float64, outputs, final
memories and input gradients equal (≤ 1e-10) on the configurations where today's weights could
not reproduce sru, padded batches, and random option combinations; plus the sru-style options
(dropout inside the layer, initialisation, positional order) on their own."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # "JIT loading the CUDA kernels was unsuccessful" on CPU machines
    warnings.simplefilter("ignore")
    import sru

from quasirnn import SRU
from quasirnn.convert import from_sru, quasirnn_state_to_sru, sru_state_to_quasirnn

TOL = dict(rtol=1e-10, atol=1e-10)
pytestmark = pytest.mark.filterwarnings("ignore:Running SRU on CPU with grad_enabled")


def _sru(N, H, seed=0, **kwargs):
    """An eval-mode float64 sru.SRU with every parameter random (v1's zero weight_c kept)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation warnings of rnn_dropout / use_tanh
        theirs = sru.SRU(N, H, **kwargs).double().eval()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if not (name.endswith("weight_c") and theirs.rnn_lst[0].v1):
                p.uniform_(-0.8, 0.8)
    return theirs


def _compare(theirs, T=6, B=3, lengths=None, c0=True, seed=1):
    """Runs both (sru on its PyTorch path: gradients enabled) and compares outputs, memories and
    the gradients of a random loss with respect to the input and the initial memories."""
    torch.manual_seed(seed)
    ours = from_sru(theirs)
    D, H, L = theirs.num_directions, theirs.hidden_size, theirs.num_layers
    x = torch.randn(T, B, theirs.input_size, dtype=torch.float64, requires_grad=True)
    c_init = torch.randn(L, B, D * H, dtype=torch.float64, requires_grad=True) if c0 else None
    mask_pad = None
    if lengths is not None:
        lengths = torch.tensor(lengths)
        mask_pad = torch.arange(T)[:, None] >= lengths[None, :]  # True on padding
    h1, c1 = theirs(x, c_init, mask_pad=mask_pad)
    hx = None if c_init is None else sru_state_to_quasirnn(c_init, D)
    h2, state = ours(x, hx, lengths=lengths)
    c2 = quasirnn_state_to_sru(state.c, D)
    if mask_pad is not None:  # padded outputs: ours are zero, sru's zero or LayerNorm's bias
        h1 = h1.masked_fill(mask_pad[..., None], 0.0)
    torch.testing.assert_close(h2, h1, **TOL)
    torch.testing.assert_close(c2, c1, **TOL)
    gh, gc = torch.randn_like(h1), torch.randn_like(c1)
    inputs = [x] if c_init is None else [x, c_init]
    g1 = torch.autograd.grad((h1 * gh).sum() + (c1 * gc).sum(), inputs)
    g2 = torch.autograd.grad((h2 * gh).sum() + (c2 * gc).sum(), inputs)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, **TOL)
    return ours


CONFIGS = {  # (N, H, options): the list, then the remaining options of sru.SRU
    "uni": (4, 5, dict(num_layers=2)),
    "uni-ln-tanh": (6, 5, dict(num_layers=3, layer_norm=True, use_tanh=True)),
    "bi-N!=H": (4, 5, dict(bidirectional=True)),
    "bi-N==H": (5, 5, dict(bidirectional=True)),
    "bi-ln-2H": (10, 5, dict(bidirectional=True, layer_norm=True, num_layers=3)),
    "rescale-N==H": (5, 5, dict(rescale=True, highway_bias=-1.5)),
    "rescale-bi": (4, 5, dict(rescale=True, bidirectional=True, num_layers=3)),
    "no-skip-N==H": (5, 5, dict(has_skip_term=False)),
    "no-skip-bi": (3, 5, dict(has_skip_term=False, bidirectional=True)),
    "normalize-after": (4, 5, dict(layer_norm=True, normalize_after=True)),
    "normalize-after-bi": (5, 5, dict(layer_norm=True, normalize_after=True, bidirectional=True)),
    "v1": (4, 5, dict(v1=True)),
    "v1-bi-tanh": (5, 5, dict(v1=True, bidirectional=True, use_tanh=True)),
    "projection": (8, 6, dict(projection_size=3, num_layers=3)),
    "projection-bi": (8, 4, dict(projection_size=3, bidirectional=True)),
    "input-to-hidden": (7, 5, dict(proj_input_to_hidden_first=True, bidirectional=True, layer_norm=True)),
    "dropouts": (4, 5, dict(dropout=0.3, rnn_dropout=0.2, weight_c_init=0.5, bidirectional=True)),
    "compatible-return": (4, 5, dict(nn_rnn_compatible_return=False, bidirectional=True, num_layers=1)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_equal_outputs_states_and_gradients(name):
    N, H, options = CONFIGS[name]
    ours = _compare(_sru(N, H, **options))
    assert not ours.training


@pytest.mark.parametrize("options", [dict(), dict(bidirectional=True), dict(bidirectional=True, layer_norm=True,
                                     normalize_after=True), dict(v1=True, bidirectional=True, rescale=True)],
                         ids=["uni", "bi", "bi-normalize-after", "bi-v1-rescale"])
def test_mask_pad_is_lengths(options):
    _compare(_sru(5, 5, num_layers=2, **options), T=7, B=4, lengths=[7, 3, 1, 5])


def test_packed_sequence_input_matches_sru():
    theirs = _sru(4, 3, bidirectional=True)
    ours = from_sru(theirs)
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([6, 2, 4]), enforce_sorted=False)
    h1, c1 = theirs(packed)
    h2, state = ours(packed)
    torch.testing.assert_close(h2.data, h1.data, **TOL)
    torch.testing.assert_close(quasirnn_state_to_sru(state.c, 2), c1, **TOL)


def test_sru_cpu_kernel_float32_without_gradients():
    """sru's own C++ CPU kernel (float32, used under no_grad) agrees too."""
    theirs = _sru(5, 5, bidirectional=True, rescale=True, layer_norm=True).float()
    ours = from_sru(theirs)
    assert next(ours.parameters()).dtype == torch.float32
    x = torch.randn(9, 2, 5)
    with torch.no_grad():
        h1, c1 = theirs(x)
        h2, state = ours(x)
    torch.testing.assert_close(h2, h1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(quasirnn_state_to_sru(state.c, 2), c1, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    N=st.integers(1, 8), H=st.integers(1, 5), num_layers=st.integers(1, 3), bidirectional=st.booleans(),
    projection_size=st.integers(0, 4), use_tanh=st.booleans(), layer_norm=st.booleans(),
    highway_bias=st.floats(-2.0, 1.0), has_skip_term=st.booleans(), rescale=st.booleans(), v1=st.booleans(),
    normalize_after=st.booleans(), proj_input_to_hidden_first=st.booleans(), padded=st.booleans(),
    c0=st.booleans(), seed=st.integers(0, 2**16),
)
def test_random_option_combinations(N, H, num_layers, bidirectional, projection_size, use_tanh, layer_norm,
                                    highway_bias, has_skip_term, rescale, v1, normalize_after,
                                    proj_input_to_hidden_first, padded, c0, seed):
    theirs = _sru(N, H, seed, num_layers=num_layers, bidirectional=bidirectional, projection_size=projection_size,
                  use_tanh=use_tanh, layer_norm=layer_norm, highway_bias=highway_bias, has_skip_term=has_skip_term,
                  rescale=rescale, v1=v1, normalize_after=normalize_after,
                  proj_input_to_hidden_first=proj_input_to_hidden_first)
    _compare(theirs, T=5, B=3, lengths=[5, 2, 4] if padded else None, c0=c0, seed=seed)


# --------------------------------------------------------------------------- the options on their own


def test_positional_order_is_sru_s():
    ours = list(inspect.signature(SRU).parameters)[:13]
    theirs = list(inspect.signature(sru.SRU).parameters)[:13]
    assert ours == theirs
    model = SRU(4, 3, 2, 0.1, 0.0, True, 0, True, True, -1.0, False, True, True)
    assert (model.bidirectional, model.use_tanh, model.layer_norm, model.has_skip_term, model.rescale,
            model.recurrent_gate) == (True, True, True, False, True, False)
    with pytest.raises(ValueError, match="v1=True contradicts recurrent_gate=True"):
        SRU(4, 3, v1=True, recurrent_gate=True)


def test_factory_arguments():
    model = SRU(4, 3, projection_size=2, layer_norm=True, rescale=True, dtype=torch.float64, device="cpu")
    assert {p.dtype for p in model.parameters()} | {b.dtype for b in model.buffers()} == {torch.float64}
    out, _ = model(torch.randn(5, 2, 4, dtype=torch.float64))
    assert out.dtype == torch.float64


@pytest.mark.parametrize("has_skip_term", [True, False])
def test_sru_dropout_one_mask_per_sequence_highway_undropped(has_skip_term):
    """In training, h = x' + m ⊙ (h_eval − x') with one m ∈ {0, 1/(1−p)} per (sequence, unit)."""
    torch.manual_seed(0)
    p = 0.5
    model = SRU(4, 4, 2, p, has_skip_term=has_skip_term, dropout_mode="sru", highway="sru").double()
    assert model.dropout == 0.0 and model.layers[0].dropout == p and model.layers[1].dropout == 0.0
    layer = model.layers[0]
    x = torch.randn(7, 6, 4, dtype=torch.float64)
    h_eval, _, _ = layer.eval()(x)
    h_train, _, _ = layer.train()(x)
    x_prime = x * 1.0 if has_skip_term else torch.zeros_like(x)
    ratio = (h_train - x_prime) / (h_eval - x_prime)
    torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio), rtol=1e-9, atol=1e-9)  # constant in time
    values = ratio[0].flatten()
    assert torch.all((values.abs() < 1e-9) | ((values - 1 / (1 - p)).abs() < 1e-9))
    assert 0 < int((values.abs() < 1e-9).sum()) < values.numel()  # some units dropped, not all


@pytest.mark.parametrize("options", [dict(layer_norm=True), dict(dropout=0.4, rnn_dropout=0.3), dict(rescale=True,
                                     highway_bias=-1.0), dict(v1=True), dict(projection_size=3)],
                         ids=["ln", "dropouts", "rescale", "v1", "projection"])
def test_sru_initialisation_bounds_match_sru(options):
    """init="sru": every projection block has the uniform bound sru gives it (max |w| within 3%)."""
    torch.manual_seed(0)
    N, H = 64, 48
    theirs = _sru(N, H, num_layers=2, **options)
    theirs.reset_parameters()
    ours = SRU(N, H, 2, highway="sru", dropout_mode="sru", init="sru", **options)
    for l, cell in enumerate(theirs.rnn_lst):
        k = cell.num_matrices
        w = cell.weight.detach().reshape(cell.weight.shape[0], 1, H, k)
        layer = ours.layers[l]
        for m in range(k):
            want = w[..., m].abs().max().item()
            got = layer.linear.weight[m * H : (m + 1) * H].detach().abs().max().item()
            assert got == pytest.approx(want, rel=0.03), (l, m)
        if layer.v is None:
            assert not cell.weight_c.detach().any()
        else:
            assert layer.v.detach().abs().max().item() == pytest.approx(cell.weight_c.detach().abs().max().item(), rel=0.05)


def test_errors():
    with pytest.raises(TypeError, match="sru.SRU"):
        from_sru(torch.nn.LSTM(3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        custom = sru.SRU(4, 4, num_layers=1, custom_m=torch.nn.Linear(4, 12, bias=False))
    with pytest.raises(ValueError, match="custom_m"):
        from_sru(custom)
    with pytest.raises(ValueError, match="highway must be one of"):
        SRU(3, 4, highway="both")
    with pytest.raises(ValueError, match="dropout_mode must be one of"):
        SRU(3, 4, dropout_mode="zoneout")
