"""quasirnn.quantize: int8 gate projections and output layers, close to float32, saved and loaded exactly."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn


import quasirnn
from quasirnn.quantization import Int8Linear
from quasirnn.models import LanguageModel, QRNNTranslator, TextClassifier

# measured relative errors ‖y8 − y‖/‖y‖ of these random models (outputs and memories): 0.9–2.8e-2; 0.06 leaves 2×
REL_ERROR = 0.06


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _layers(cls, **kw) -> nn.Module:
    torch.manual_seed(0)
    return cls(24, 32, num_layers=2, **kw).eval()


@pytest.mark.parametrize("cls, kw", [(quasirnn.QRNN, {"window": 2}), (quasirnn.QRNN, {"pooling": "ifo"}),
                                     (quasirnn.SRU, {}), (quasirnn.SRU, {"bidirectional": True})])
def test_layers_run_their_int8_projections_close_to_float32(cls, kw):
    model = _layers(cls, **kw)
    q = quasirnn.quantize(model, "int8")
    linears = [m for m in q.modules() if isinstance(m, (nn.Linear, Int8Linear))]
    assert linears and all(isinstance(m, Int8Linear) for m in linears)
    assert all(type(m) is nn.Linear for m in model.modules() if isinstance(m, (nn.Linear, Int8Linear)))  # a copy
    calls = []
    for m in linears:  # the forward goes through the int8 modules, not F.linear of a float weight
        m.register_forward_hook(lambda mod, i, o: calls.append(mod))
    x = torch.randn(20, 3, 24)
    c0 = torch.randn(2 * (2 if kw.get("bidirectional") else 1), 3, 32)
    with torch.no_grad():
        (y, h), (y8, h8) = model(x, c0), q(x, c0)
    assert {id(m) for m in calls} == {id(m) for m in linears}
    assert 0 < _rel(y8, y) < REL_ERROR and y8.dtype == torch.float32 and y8.shape == y.shape
    assert 0 < _rel(h8.c, h.c) < REL_ERROR


def test_output_layers_of_the_models_are_quantised():
    torch.manual_seed(0)
    lm = LanguageModel(50, 16, 32, num_layers=2, cell="qrnn", tie_weights=False).eval()
    q = quasirnn.quantize(lm, "int8")
    assert not [m for m in q.modules() if isinstance(m, nn.Linear)] and isinstance(q.decoder, Int8Linear)
    ids = torch.randint(0, 50, (12, 4))
    with torch.no_grad():
        assert _rel(q(ids)[0], lm(ids)[0]) < REL_ERROR

    clf = TextClassifier(50, emb_size=16, hidden_size=32, num_layers=2).eval()
    qc = quasirnn.quantize(clf, "int8")
    assert isinstance(qc.decoder, Int8Linear)
    lengths = torch.tensor([12, 7, 3, 12])
    with torch.no_grad():
        assert _rel(qc(ids, lengths), clf(ids, lengths)) < REL_ERROR

    tr = QRNNTranslator(30, 40, emb_size=16, hidden_size=32, num_layers=2).eval()
    qt = quasirnn.quantize(tr, "int8")
    assert isinstance(qt.output, Int8Linear) and isinstance(qt.attn_query, Int8Linear)
    src, tgt = torch.randint(1, 30, (9, 4)), torch.randint(1, 40, (7, 4))
    with torch.no_grad():
        assert _rel(qt(src, torch.tensor([9, 8, 5, 2]), tgt), tr(src, torch.tensor([9, 8, 5, 2]), tgt)) < REL_ERROR


def test_tied_language_model_keeps_its_float_embedding():
    torch.manual_seed(0)
    lm = LanguageModel(50, 32, 32, num_layers=2, cell="sru", tie_weights=True).eval()
    q = quasirnn.quantize(lm, "int8")
    assert isinstance(q.decoder, Int8Linear) and torch.equal(q.encoder.weight, lm.encoder.weight)
    ids = torch.randint(0, 50, (12, 4))
    with torch.no_grad():
        assert _rel(q(ids)[0], lm(ids)[0]) < REL_ERROR


def test_tied_adaptive_softmax_scores_through_int8_copies_of_the_embedding():
    torch.manual_seed(0)
    lm = LanguageModel(60, 16, 32, num_layers=2, cell="qrnn", softmax="adaptive", cutoffs=[10, 30],
                       word_order=torch.randperm(60)).eval()
    with torch.no_grad():
        lm.softmax.bias.normal_()  # biases in rank order, which each cluster's copy must pick
    q = quasirnn.quantize(lm, "int8")
    assert lm.softmax.cluster_scorers is None
    assert [type(m) for m in q.softmax.cluster_scorers] == [Int8Linear] * 3
    assert [m.weight().shape for m in q.softmax.cluster_scorers] == [(12, 16), (20, 16), (30, 16)]
    assert torch.equal(q.encoder.weight, lm.encoder.weight) and q.softmax.weight is q.encoder.weight
    calls = []
    for k, m in enumerate(q.softmax.cluster_scorers):
        m.register_forward_hook(lambda mod, i, o, k=k: calls.append((k, o.shape[0])))
    ids = torch.randint(0, 60, (12, 4))
    with torch.no_grad():
        (logp, _), (logp8, _) = lm(ids), q(ids)
        nll, nll8 = lm(ids, targets=ids, reduction="sum")[0], q(ids, targets=ids, reduction="sum")[0]
    assert calls[:3] == [(0, 48), (1, 48), (2, 48)]  # log_prob: every cluster for every row
    tails = torch.bucketize(q.softmax.rank[ids.flatten()], q.softmax.boundaries, right=True)
    assert calls[3:] == [(0, 48)] + [(k, int((tails == k).sum())) for k in (1, 2) if (tails == k).any()]  # the NLL
    assert torch.allclose(logp8.exp().sum(-1), torch.ones(12, 4), atol=1e-5)
    assert 0 < (logp8 - logp).abs().max() < 0.05 and logp8.argmax(-1).eq(logp.argmax(-1)).float().mean() > 0.9
    assert torch.allclose(nll8, -logp8.gather(2, ids.unsqueeze(2)).sum()) and abs(nll8 / nll - 1) < 0.01
    assert quasirnn.quantize(lm.softmax.eval(), "int8").cluster_scorers is not None  # the module alone too


def test_saved_int8_model_loads_exactly_into_a_fresh_quantised_one():
    q = quasirnn.quantize(_layers(quasirnn.QRNN, window=2), "int8")
    buffer = io.BytesIO()
    torch.save(q.state_dict(), buffer)
    buffer.seek(0)
    fresh = quasirnn.quantize(_layers(quasirnn.QRNN, window=2).apply(_scramble), "int8")
    x = torch.randn(10, 3, 24)
    with torch.no_grad():
        assert not torch.equal(fresh(x)[0], q(x)[0])
        fresh.load_state_dict(torch.load(buffer))
        assert torch.equal(fresh(x)[0], q(x)[0])


def test_saved_int8_tied_adaptive_model_loads_its_cluster_scorers_exactly():
    def build():
        torch.manual_seed(0)
        return LanguageModel(60, 16, 32, num_layers=1, cell="sru", softmax="adaptive", cutoffs=[20]).eval()
    q = quasirnn.quantize(build(), "int8")
    buffer = io.BytesIO()
    torch.save(q.state_dict(), buffer)
    buffer.seek(0)
    fresh = quasirnn.quantize(build().apply(_scramble_embedding), "int8")
    ids = torch.randint(0, 60, (7, 2))
    with torch.no_grad():
        assert not torch.equal(fresh(ids)[0], q(ids)[0])
        fresh.load_state_dict(torch.load(buffer))
        assert torch.equal(fresh(ids)[0], q(ids)[0])


def _scramble_embedding(m: nn.Module) -> None:
    if isinstance(m, nn.Embedding):
        with torch.no_grad():
            m.weight.mul_(-2.0)


def _scramble(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        with torch.no_grad():
            m.weight.mul_(-2.0)


def test_a_lone_linear_is_quantised_too():
    assert isinstance(quasirnn.quantize(nn.Linear(4, 5).eval(), "int8"), Int8Linear)


def test_bad_calls_get_one_line_errors():
    model = _layers(quasirnn.QRNN)
    with pytest.raises(ValueError, match=r"scheme must be one of 'int8', got 'int4'"):
        quasirnn.quantize(model, "int4")
    with pytest.raises(ValueError, match=r"call model.eval\(\) first"):
        quasirnn.quantize(model.train(), "int8")
    with pytest.raises(ValueError, match=r"float32 CPU models: parameter 'layers.0.linear.weight' is torch.float64"):
        quasirnn.quantize(model.eval().double(), "int8")
