"""Weight drop (AWD-LSTM's DropConnect on a layer's weight matrix, ``--wdrop``): models/dropout.py
``weight_drop`` and its wiring in ``LanguageModel``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quasirnn.models import LanguageModel, weight_drop
from quasirnn.models.language_model import WEIGHT_DROP

CELLS = ["qrnn", "sru", "lstm"]


class StepByStep(nn.Module):
    """Applies its linear map at every time step and returns the weight each step used (x = the identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 6, bias=False)

    def forward(self, steps: int) -> torch.Tensor:
        eye = torch.eye(4)
        return torch.stack([self.lin(eye).T for _ in range(steps)])  # (T, 6, 4): the weight of each step


def _lm(cell, wdrop, **kw):
    torch.manual_seed(0)
    return LanguageModel(40, 8, 12, num_layers=2, cell=cell, wdrop=wdrop, dropout=0, dropouth=0, dropouti=0,
                         dropoute=0, **kw)


def test_whole_entries_are_dropped_and_scaled_one_mask_per_call():
    torch.manual_seed(0)
    module = StepByStep()
    raw = module.lin.weight.detach().clone()
    seen = weight_drop(module, ["lin.weight"], 0.5, 7)
    assert torch.equal(seen, seen[:1].expand_as(seen))  # every step of one call: the same dropped weight
    kept = seen[0] != 0
    torch.testing.assert_close(seen[0][kept], 2.0 * raw[kept])  # kept entries scaled by 1 / (1 - p)
    assert 0 < int(kept.sum()) < raw.numel()
    again = weight_drop(module, ["lin.weight"], 0.5, 1)
    assert not torch.equal(again[0], seen[0])  # a fresh mask for the next call
    assert torch.equal(module.lin.weight.detach(), raw) and isinstance(module.lin.weight, nn.Parameter)


def test_the_drop_rate_is_p():
    torch.manual_seed(0)
    lin = nn.Linear(300, 300, bias=False)
    out = weight_drop(lin, ["weight"], 0.3, torch.eye(300))
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01


def test_identity_in_eval_or_with_p_0_and_bad_p_refused():
    torch.manual_seed(0)
    module = StepByStep()
    assert torch.equal(weight_drop(module, ["lin.weight"], 0.5, 2, training=False)[0], module.lin.weight)
    assert torch.equal(weight_drop(module, ["lin.weight"], 0.0, 2)[0], module.lin.weight)
    with pytest.raises(ValueError, match=r"weight drop probability must be in \[0, 1\), got 1.0"):
        weight_drop(module, ["lin.weight"], 1.0, 2)
    with pytest.raises(ValueError, match=r"wdrop must be in \[0, 1\), got -0.1"):
        LanguageModel(10, 4, 4, num_layers=1, wdrop=-0.1)


@pytest.mark.parametrize("cell", CELLS)
def test_language_model_drops_its_layers_weights_in_training_only(cell):
    """The gradient of each layer's dropped weight is 0 exactly where the mask dropped it (a layer's fast
    path that read the raw weight would give it everywhere); masks differ per call; eval is the model without it."""
    model, plain = _lm(cell, 0.5), _lm(cell, 0.0)
    plain.load_state_dict(model.state_dict())
    ids = torch.randint(0, 40, (6, 3))
    first, second = model(ids)[0], model(ids)[0]
    assert not torch.allclose(first, second)
    loss, _ = model(ids, targets=ids)
    loss.backward()
    plain(ids, targets=ids)[0].backward()
    for layer, reference in zip(model.rnns, plain.rnns):
        grad = layer.get_parameter(WEIGHT_DROP[cell][0]).grad
        dense = reference.get_parameter(WEIGHT_DROP[cell][0]).grad
        assert grad is not None and grad.abs().sum() > 0
        zeros = (grad == 0).float().mean().item()
        assert 0.3 < zeros < 0.7 and (dense == 0).float().mean().item() < 0.05
    model.eval(), plain.eval()
    torch.testing.assert_close(model(ids)[0], plain(ids)[0], rtol=0, atol=0)
    torch.testing.assert_close(model(ids)[0], model(ids)[0], rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_keys_are_those_of_the_model_without_weight_drop(cell):
    dropped, plain = _lm(cell, 0.4), _lm(cell, 0.0)
    assert list(dropped.state_dict()) == list(plain.state_dict())
    dropped.load_state_dict(plain.state_dict())  # strict: a checkpoint of either loads into the other
    assert all(isinstance(p, nn.Parameter) for p in dropped.parameters())


def test_weight_drop_under_distributed_data_parallel():
    """One gloo rank: the DDP wrapper's forward and backward run with the dropped weights, and the gradient
    reaches the raw weight (0 where dropped)."""
    import socket
    from datetime import timedelta

    import torch.distributed as dist

    with socket.socket() as s:  # a TCP store on loopback: no file another test session could clean away
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            timeout=timedelta(seconds=120))
    try:
        model = _lm("qrnn", 0.5)
        ddp = nn.parallel.DistributedDataParallel(model)
        ids = torch.randint(0, 40, (5, 2))
        loss, _ = ddp(ids, targets=ids)
        loss.backward()
        grad = model.rnns[0].get_parameter(WEIGHT_DROP["qrnn"][0]).grad
        assert 0.3 < (grad == 0).float().mean().item() < 0.7
    finally:
        dist.destroy_process_group()


def test_weight_drop_compiles():
    """torch.compile of the model with weight drop: training runs forward and backward, eval equals eager."""
    torch._dynamo.reset()
    model = _lm("qrnn", 0.5)
    ids = torch.randint(0, 40, (5, 2))
    compiled = torch.compile(model, backend="aot_eager")
    loss, _ = compiled(ids, targets=ids)
    loss.backward()
    grad = model.rnns[1].get_parameter(WEIGHT_DROP["qrnn"][0]).grad
    assert 0.3 < (grad == 0).float().mean().item() < 0.7
    model.eval()
    torch.testing.assert_close(compiled(ids)[0], model(ids)[0])


def test_dropped_weight_is_f_dropout_of_the_raw_one():
    """The same random stream gives the same dropped weight as F.dropout of the raw one (awd's WeightDrop)."""
    lin = nn.Linear(5, 3, bias=False)
    torch.manual_seed(3)
    got = weight_drop(lin, ["weight"], 0.25, torch.eye(5)).T
    torch.manual_seed(3)
    torch.testing.assert_close(got, F.dropout(lin.weight, 0.25, training=True))
