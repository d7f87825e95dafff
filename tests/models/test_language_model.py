"""LanguageModel: shapes, weight tying, state carrying, detaching (every cell); its evaluation is tested
in tests/experiments/test_lm_evaluation.py."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from quasirnn.models import LanguageModel, detach_hidden
from quasirnn.models.paper_windows import AWD_QRNN_WINDOWS

CELLS = ["lstm", "qrnn", "sru"]
V, E, H = 37, 12, 20


def make(cell, **kw):
    torch.manual_seed(0)
    kw = {"dropout": 0.3, "dropouth": 0.2, "dropouti": 0.3, "dropoute": 0.1, **kw}
    return LanguageModel(V, E, H, num_layers=3, cell=cell, **kw)


def _tensors(state):
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in _tensors(s)]


@pytest.mark.parametrize("cell", CELLS)
def test_forward_shapes_and_tied_weights(cell):
    model = make(cell)
    ids = torch.randint(0, V, (9, 4))
    logits, hidden = model(ids)
    assert logits.shape == (9, 4, V) and logits.dtype == torch.float32
    assert len(hidden) == 3
    assert model.output_sizes == [H, H, E]  # last layer has E features so the decoder can be tied
    assert model.tied and model.decoder.weight is model.encoder.weight
    if cell == "lstm":
        assert [tuple(h.shape) for h, c in hidden] == [(1, 4, H), (1, 4, H), (1, 4, E)]
    else:
        assert [tuple(s.c.shape) for s in hidden] == [(1, 4, H), (1, 4, H), (1, 4, E)]


@pytest.mark.parametrize("cell", CELLS)
def test_untied_model(cell):
    tied, untied = make(cell), make(cell, tie_weights=False)
    assert not untied.tied and untied.output_sizes == [H, H, H]
    assert untied.decoder.weight.shape == (V, H)
    logits, _ = untied(torch.randint(0, V, (3, 2)))
    assert logits.shape == (3, 2, V)
    # the tied matrix is counted once
    assert tied.num_parameters() == sum(p.numel() for p in tied.parameters())
    assert "decoder.weight" in tied.state_dict() and tied.num_parameters() < sum(
        t.numel() for t in tied.state_dict().values()
    )


@pytest.mark.parametrize("cell", CELLS)
def test_carrying_the_state_equals_one_long_sequence(cell):
    model = make(cell).eval()
    ids = torch.randint(0, V, (12, 3))
    full, _ = model(ids)
    first, hidden = model(ids[:5])
    second, _ = model(ids[5:], hidden)
    torch.testing.assert_close(torch.cat([first, second]), full, rtol=1e-5, atol=1e-5)
    # and a zero initial state is the same as None
    again, _ = model(ids, model.init_hidden(3))
    torch.testing.assert_close(again, full, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_detach_hidden_cuts_the_graph(cell):
    model = make(cell).train()
    _, hidden = model(torch.randint(0, V, (6, 2)))
    assert any(t.requires_grad for t in _tensors(hidden))
    detached = detach_hidden(hidden)
    assert type(detached[0]) is type(hidden[0])
    assert all(not t.requires_grad for t in _tensors(detached))
    for a, b in zip(_tensors(detached), _tensors(hidden)):
        assert torch.equal(a, b)
    # a step of truncated BPTT only reaches this window's parameters' graph
    logits, _ = model(torch.randint(0, V, (6, 2)), detached)
    logits.sum().backward()
    assert detach_hidden(None) is None


@pytest.mark.parametrize("cell", CELLS)
def test_pack_unpack_hidden_roundtrip(cell):
    model = make(cell).eval()
    ids = torch.randint(0, V, (8, 2))
    _, hidden = model(ids[:4])
    packed = model.pack_hidden(hidden)
    assert type(packed) is tuple and all(type(p) is tuple for p in packed)  # no NamedTuple left
    restored = model.unpack_hidden(packed)
    torch.testing.assert_close(model(ids[4:], restored)[0], model(ids[4:], hidden)[0])


def test_unpack_hidden_of_a_checkpoint_before_h_n_resumes_exactly():
    """Checkpoints written before the state kept h_n hold (c, inputs) per layer; they still resume."""
    model = make("qrnn").eval()
    ids = torch.randint(0, V, (8, 2))
    _, hidden = model(ids[:4])
    legacy = tuple((s.c, tuple(s.inputs)) for s in hidden)
    assert any(len(s.inputs[0]) for s in hidden)  # the first layer (window 2) has history to resume
    restored = model.unpack_hidden(legacy)
    assert all(s.h is None for s in restored)
    torch.testing.assert_close(model(ids[4:], restored)[0], model(ids[4:], hidden)[0], rtol=0, atol=0)
    # and the packed form is loadable with weights_only=True
    buf = io.BytesIO()
    torch.save(model.pack_hidden(hidden), buf)
    buf.seek(0)
    again = model.unpack_hidden(torch.load(buf, weights_only=True))
    torch.testing.assert_close(model(ids[4:], again)[0], model(ids[4:], hidden)[0], rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_only_in_training(cell):
    model = make(cell)
    ids = torch.randint(0, V, (6, 3))
    model.eval()
    assert torch.equal(model(ids)[0], model(ids)[0])
    model.train()
    assert not torch.equal(model(ids)[0], model(ids)[0])


def test_qrnn_windows():
    every = LanguageModel(V, E, H, num_layers=3, cell="qrnn", window=2)
    assert every.windows == (2, 2, 2)  # an int is every layer's width, as in quasirnn.QRNN
    assert [rnn.window for rnn in every.rnns] == [2, 2, 2]
    preset = LanguageModel(V, E, H, num_layers=3, cell="qrnn")
    assert preset.windows == (2, 1, 1) == AWD_QRNN_WINDOWS.widths(3)  # the default: the AWD-QRNN preset
    per_layer = LanguageModel(V, E, H, num_layers=3, cell="qrnn", window=[3, 2, 2], zoneout=0.1)
    assert [rnn.window for rnn in per_layer.rnns] == [3, 2, 2]
    assert all(rnn.zoneout == 0.1 for rnn in per_layer.rnns)
    with pytest.raises(ValueError, match=r"window must be an integer >= 1 \(every layer\) or a sequence of 3"):
        LanguageModel(V, E, H, num_layers=3, cell="qrnn", window=[2, 1])


def test_invalid_configurations():
    with pytest.raises(ValueError, match="cell"):
        LanguageModel(V, E, H, cell="gru")
    with pytest.raises(ValueError, match="zoneout"):
        LanguageModel(V, E, H, cell="lstm", zoneout=0.1)
    with pytest.raises(ValueError, match=r"zoneout is implemented for the qrnn cell only, got zoneout=0.1 with cell='sru'"):
        LanguageModel(V, E, H, cell="sru", zoneout=0.1)
    with pytest.raises(ValueError):
        LanguageModel(V, E, H, num_layers=0, cell="lstm")


def test_sru_cell_layers_ignore_the_window():
    from quasirnn import SRU

    model = LanguageModel(V, E, H, num_layers=3, cell="sru", window=[3, 2, 2])
    assert model.windows is None
    assert all(isinstance(rnn, SRU) and rnn.num_layers == 1 for rnn in model.rnns)
    assert [(rnn.input_size, rnn.hidden_size) for rnn in model.rnns] == [(E, H), (H, H), (H, E)]


# ----------------------------------------------------------------------------- adaptive softmax


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_adaptive_softmax_model_loss_is_the_exact_log_probability(cell, tie):
    torch.manual_seed(0)
    order = torch.randperm(V)
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, softmax="adaptive", cutoffs=[5, 20], word_order=order,
                          tie_weights=tie).eval()
    assert model.tied == tie and not hasattr(model, "decoder")
    ids, targets = torch.randint(0, V, (2, 6, 3))
    logp, _ = model(ids)
    assert logp.shape == (6, 3, V)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(6, 3))
    loss, _ = model(ids, None, targets)
    expected = -logp.gather(-1, targets.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("cell", CELLS)
def test_adaptive_softmax_without_tail_equals_the_full_softmax(cell):
    full = make(cell).eval()
    adaptive = LanguageModel(V, E, H, num_layers=3, cell=cell, softmax="adaptive", cutoffs=[]).eval()
    state = dict(full.state_dict())
    state["softmax.bias"] = state.pop("decoder.bias")
    state.pop("decoder.weight")
    missing = adaptive.load_state_dict(state, strict=False)
    assert set(missing.missing_keys) <= {"softmax.weight", "softmax.order", "softmax.rank", "softmax.cluster_weight",
                                         "softmax.cluster_bias"}
    assert adaptive.softmax.weight is adaptive.encoder.weight
    ids, targets = torch.randint(0, V, (2, 7, 3))
    torch.testing.assert_close(adaptive(ids, None, targets)[0], full(ids, None, targets)[0])
    torch.testing.assert_close(adaptive(ids)[0], F.log_softmax(full(ids)[0], -1))


def test_adaptive_softmax_tied_gradient_reaches_the_embedding():
    torch.manual_seed(0)
    model = LanguageModel(V, E, H, num_layers=2, cell="qrnn", softmax="adaptive", cutoffs=[5, 20], dropoute=0.0)
    ids = torch.full((4, 2), 3)  # the embedding sees one word only ...
    targets = torch.randint(0, V, (4, 2))
    model(ids, None, targets)[0].backward()
    grad = model.encoder.weight.grad
    head_words = model.softmax.order[:5]
    assert (grad[head_words].abs().sum(1) > 0).all()  # ... but the tied softmax gives every head word a gradient
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_softmax_options_are_checked():
    with pytest.raises(ValueError, match="softmax must be one of full, adaptive, got 'sampled'"):
        LanguageModel(V, E, H, softmax="sampled")
    with pytest.raises(ValueError, match="cutoffs are for the adaptive softmax"):
        LanguageModel(V, E, H, cutoffs=[5])
    with pytest.raises(ValueError, match="strictly increasing"):
        LanguageModel(V, E, H, softmax="adaptive", cutoffs=[40])
    model = make("lstm")
    with pytest.raises(ValueError, match="targets must have the shape of ids"):
        model(torch.zeros(3, 2, dtype=torch.long), None, torch.zeros(3, 1, dtype=torch.long))
