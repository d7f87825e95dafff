"""quasirnn.convert.from_torchqrnn against an independent re-implementation of salesforce
pytorch-qrnn's forward pass, written from that library's documented equations:

    window 2 input  [x_t, x_{t-1}]  (x_0's predecessor is zero)
    Z = tanh(.), F = sigmoid(.), O = sigmoid(.)  from one linear map, split Z, F, O
    ForgetMult:  c_t = F_t * z_t + (1 - F_t) * c_{t-1}   (F weights the *new* candidate)
    h_t = O_t * c_t  (output_gate=True),  else h_t = c_t;  hidden = c_T per layer
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quasirnn.convert import convert_linear, from_torchqrnn


class TorchQRNNLayer(nn.Module):
    def __init__(self, input_size, hidden_size, window=1, output_gate=True, zoneout=0.0):
        super().__init__()
        self.window, self.output_gate, self.hidden_size = window, output_gate, hidden_size
        self.zoneout = zoneout
        self.linear = nn.Linear(window * input_size, (3 if output_gate else 2) * hidden_size)

    def forward(self, X, hidden=None):
        if self.window == 2:
            Xm1 = torch.cat([torch.zeros_like(X[:1]), X[:-1]], 0)
            X = torch.cat([X, Xm1], 2)
        Y = self.linear(X)
        if self.output_gate:
            Z, F, O = Y.chunk(3, dim=2)
        else:
            Z, F = Y.chunk(2, dim=2)
        Z, F = torch.tanh(Z), torch.sigmoid(F)
        if self.zoneout and not self.training:  # pytorch-qrnn's evaluation-time zoneout
            F = F * (1 - self.zoneout)
        c = torch.zeros_like(Z[0]) if hidden is None else hidden
        cs = []
        for t in range(len(Z)):
            c = F[t] * Z[t] + (1 - F[t]) * c
            cs.append(c)
        C = torch.stack(cs)
        H = torch.sigmoid(O) * C if self.output_gate else C
        return H, C[-1:]


class TorchQRNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, window, output_gate=True, zoneout=0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            TorchQRNNLayer(input_size if l == 0 else hidden_size, hidden_size, window, output_gate, zoneout)
            for l in range(num_layers)
        )

    def forward(self, X):
        finals = []
        for layer in self.layers:
            X, c = layer(X)
            finals.append(c)
        return X, torch.cat(finals, 0)


@pytest.mark.parametrize("output_gate", [True, False], ids=["fo", "f"])
@pytest.mark.parametrize("window", [1, 2])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_converted_qrnn_matches_pytorch_qrnn(num_layers, window, output_gate):
    torch.manual_seed(0)
    theirs = TorchQRNN(7, 11, num_layers, window, output_gate).double()
    for p in theirs.parameters():
        nn.init.normal_(p, std=0.5)  # random, nothing zero, biases included
    x = torch.randn(13, 4, 7, dtype=torch.float64)
    expected, expected_c = theirs(x)
    ours = from_torchqrnn(theirs.state_dict(), input_size=7, output_gate=output_gate).double().eval()
    assert (ours.num_layers, ours.window, ours.pooling) == (num_layers, window, "fo" if output_gate else "f")
    out, state = ours(x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state.c, expected_c, rtol=1e-10, atol=1e-10)
    # the first layer's window can be given instead of the input size
    again = from_torchqrnn(theirs.state_dict(), window=window, output_gate=output_gate).double()
    torch.testing.assert_close(again(x)[0], expected, rtol=1e-10, atol=1e-10)


def test_awd_qrnn_layers_convert_one_by_one_with_weight_drop_names():
    """AWD-QRNN: layers of different sizes and windows under rnns.N., WeightDrop's weight_raw."""
    torch.manual_seed(1)
    layers = [TorchQRNNLayer(6, 10, window=2), TorchQRNNLayer(10, 6, window=1)]
    state = {}
    for l, layer in enumerate(layers):
        layer.double()
        for p in layer.parameters():
            nn.init.normal_(p, std=0.5)
        state[f"rnns.{l}.linear.module.weight_raw"] = layer.linear.weight.detach().clone()
        state[f"rnns.{l}.linear.module.bias"] = layer.linear.bias.detach().clone()
    state["encoder.weight"] = torch.randn(5, 6)
    x = torch.randn(9, 2, 6, dtype=torch.float64)
    ours, theirs = x, x
    for l, (n_in, layer) in enumerate(zip((6, 10), layers)):
        converted = from_torchqrnn(state, input_size=n_in, prefix=f"rnns.{l}.").double()
        ours = converted(ours)[0]
        theirs = layer(theirs)[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_convert_linear_negates_forget_rows_and_reverses_window():
    weight = torch.arange(3 * 2 * 2 * 4, dtype=torch.float64).view(6, 8) + 1  # H=2, k=2, N=4
    bias = torch.arange(6, dtype=torch.float64) + 1
    w, b = convert_linear(weight, bias, window=2)
    torch.testing.assert_close(w[:, :4], weight[:, 4:] * torch.tensor([1, 1, -1, -1, 1, 1.0])[:, None])
    torch.testing.assert_close(b, bias * torch.tensor([1, 1, -1, -1, 1, 1.0]))


def test_errors_name_what_is_expected():
    theirs = TorchQRNN(4, 6, 2, 1)
    with pytest.raises(ValueError, match="give input_size or window"):
        from_torchqrnn(theirs.state_dict())
    with pytest.raises(KeyError, match="no pytorch-qrnn layer weights"):
        from_torchqrnn({"encoder.weight": torch.zeros(2, 2)}, input_size=4)
    mixed = {**TorchQRNN(4, 6, 1, 2).state_dict(), "layers.1.linear.weight": torch.zeros(18, 6),
             "layers.1.linear.bias": torch.zeros(18)}
    with pytest.raises(ValueError, match=r"windows \[2, 1\].*convert each layer"):
        from_torchqrnn(mixed, input_size=4)
    with pytest.raises(ValueError, match=r"expected a linear weight of shape \(3\*H, 2\*N\)"):
        convert_linear(torch.zeros(7, 4), None, window=2)


@pytest.mark.parametrize("output_gate", [True, False], ids=["fo", "f"])
@pytest.mark.parametrize("window", [1, 2])
@pytest.mark.parametrize("zoneout", [0.25, 0.5])
def test_converted_qrnn_matches_pytorch_qrnn_zoneout_at_evaluation(zoneout, window, output_gate):
    torch.manual_seed(0)
    theirs = TorchQRNN(5, 6, 2, window, output_gate, zoneout=zoneout).double().eval()
    for p in theirs.parameters():
        nn.init.normal_(p, std=0.5)
    x = torch.randn(11, 3, 5, dtype=torch.float64)
    expected, expected_c = theirs(x)
    ours = from_torchqrnn(theirs.state_dict(), input_size=5, output_gate=output_gate, zoneout=zoneout).eval()
    assert ours.zoneout == zoneout and all(layer.zoneout_eval for layer in ours.layers)
    out, state = ours(x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state.c, expected_c, rtol=1e-10, atol=1e-10)
    # without the option the outputs differ (what the option is for)
    plain = from_torchqrnn(theirs.state_dict(), input_size=5, output_gate=output_gate).eval()
    assert (plain(x)[0] - expected).abs().max() > 1e-3


def test_zoneout_eval_scales_by_the_expected_mask_on_every_backend():
    """zoneout_eval equals the reference pooling with the mask 1 − p, forward and backward (ifo too)."""
    from quasirnn import QRNNLayer
    from quasirnn.ops import qrnn_pooling_reference

    torch.manual_seed(0)
    for pooling in ("f", "fo", "ifo"):
        layer = QRNNLayer(4, 5, 2, pooling, 0.3, zoneout_eval=True).double().eval()
        x = torch.randn(6, 2, 4, dtype=torch.float64, requires_grad=True)
        h, c_last, _ = layer(x)
        gates, _ = layer.gates(x)
        mask = torch.full((6, 2, 5), 0.7, dtype=torch.float64)
        h_ref, c_ref = qrnn_pooling_reference(gates, None, pooling, mask)
        torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c_last, c_ref[-1], rtol=1e-12, atol=1e-12)
        g, = torch.autograd.grad(h.sum(), x)
        g_ref, = torch.autograd.grad(h_ref.sum(), x)
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-10)
