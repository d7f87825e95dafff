"""QRNN(dense=True) (paper §2.1): layer input sizes, the concatenated output recomputed layer by
layer, the "last" output option, streaming state, dropout placement, and per-layer windows."""

from __future__ import annotations

import pytest
import torch

from quasirnn import QRNN

F64 = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("window", [1, 2, (2, 1, 3)])
def test_dense_layer_input_sizes_and_output_shapes(bidirectional, window):
    N, H, L = 6, 5, 3
    D = 2 if bidirectional else 1
    model = QRNN(N, H, num_layers=L, window=window, dense=True, bidirectional=bidirectional)
    windows = [window] * L if isinstance(window, int) else list(window)
    for idx, layer in enumerate(model.layers):
        l = idx // D
        assert layer.input_size == N + l * D * H
        assert layer.window == windows[l]
        assert layer.linear.in_features == windows[l] * (N + l * D * H)
        assert layer.linear.out_features == 3 * H  # fo-pooling: Z, F, O
    assert model.output_size == N + L * D * H
    out, state = model(torch.randn(7, 4, N))
    assert out.shape == (7, 4, N + L * D * H)
    assert state.c.shape == (L * D, 4, H)
    assert [tuple(x.shape) for x in state.inputs] == [
        (windows[i // D] - 1, 4, N + (i // D) * D * H) for i in range(L * D)
    ]
    last = QRNN(N, H, num_layers=L, window=window, dense=True, dense_output="last", bidirectional=bidirectional)
    assert last.output_size == D * H
    assert last(torch.randn(7, 4, N))[0].shape == (7, 4, D * H)
    assert "dense=True, dense_output='last'" in repr(last)


def test_dense_output_is_input_and_each_layer_recomputed_by_hand():
    N, H, L = 3, 4, 3
    model = QRNN(N, H, num_layers=L, window=2, dense=True).double()
    x = torch.randn(6, 2, N, dtype=torch.float64)
    out, _ = model(x)
    features = x
    for layer in model.layers:
        h, _, _ = layer(features)
        features = torch.cat([features, h], dim=-1)
    torch.testing.assert_close(out, features, **F64)
    torch.testing.assert_close(out[..., :N], x, rtol=0, atol=0)  # the input passes through unchanged


def test_dense_bidirectional_blocks_are_forward_then_backward():
    N, H = 3, 4
    model = QRNN(N, H, num_layers=2, dense=True, bidirectional=True).double()
    x = torch.randn(5, 2, N, dtype=torch.float64)
    out, _ = model(x)
    fwd, _, _ = model.layers[0](x)
    bwd, _, _ = model.layers[1](x.flip(0))
    first = torch.cat([x, fwd, bwd.flip(0)], dim=-1)
    torch.testing.assert_close(out[..., : N + 2 * H], first, **F64)
    fwd2, _, _ = model.layers[2](first)
    bwd2, _, _ = model.layers[3](first.flip(0))
    torch.testing.assert_close(out[..., N + 2 * H :], torch.cat([fwd2, bwd2.flip(0)], dim=-1), **F64)


def test_dense_last_output_is_the_last_block_of_concat():
    concat = QRNN(4, 5, num_layers=3, window=(2, 1, 1), dense=True).double()
    last = QRNN(4, 5, num_layers=3, window=(2, 1, 1), dense=True, dense_output="last").double()
    last.load_state_dict(concat.state_dict())  # same weight layout
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(last(x)[0], concat(x)[0][..., -5:], **F64)


def test_dense_is_not_the_plain_stack():
    """The extra inputs matter: zeroing the weights that read the skip connections gives the plain stack."""
    N, H = 3, 4
    dense = QRNN(N, H, num_layers=2, dense=True, dense_output="last").double()
    plain = QRNN(N, H, num_layers=2).double()
    x = torch.randn(5, 2, N, dtype=torch.float64)
    plain.layers[0].load_state_dict(dense.layers[0].state_dict())
    plain.layers[1].linear.weight.data.copy_(dense.layers[1].linear.weight.data[:, N:])
    plain.layers[1].linear.bias.data.copy_(dense.layers[1].linear.bias.data)
    assert not torch.allclose(dense(x)[0], plain(x)[0])
    with torch.no_grad():
        dense.layers[1].linear.weight[:, :N] = 0  # cut the embedding → layer 2 connection
    torch.testing.assert_close(dense(x)[0], plain(x)[0], **F64)


@pytest.mark.parametrize("window", [1, 2, (2, 1, 3)])
def test_dense_streaming_split_equals_full_sequence(window):
    model = QRNN(3, 4, num_layers=3, window=window, dense=True).double()
    x = torch.randn(9, 2, 3, dtype=torch.float64)
    full, full_state = model(x)
    for t in (1, 4, 8):
        first, state = model(x[:t])
        second, state = model(x[t:], state)
        torch.testing.assert_close(torch.cat([first, second]), full, **F64)
        torch.testing.assert_close(state.c, full_state.c, **F64)


def test_dense_is_causal():
    model = QRNN(3, 4, num_layers=3, window=2, dense=True).double()
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    y = x.clone()
    y[5:] = torch.randn(3, 2, 3, dtype=torch.float64)  # change the future only
    torch.testing.assert_close(model(x)[0][:5], model(y)[0][:5], **F64)
    assert not torch.allclose(model(x)[0][5:], model(y)[0][5:])


def test_dense_batch_first_and_unbatched_match_time_major():
    model = QRNN(3, 4, num_layers=2, window=2, dense=True).double()
    bf = QRNN(3, 4, num_layers=2, window=2, dense=True, batch_first=True).double()
    bf.load_state_dict(model.state_dict())
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, _ = model(x)
    torch.testing.assert_close(bf(x.transpose(0, 1))[0], out.transpose(0, 1), **F64)
    torch.testing.assert_close(model(x[:, 1])[0], out[:, 1], **F64)


def test_dense_dropout_spares_the_input_and_the_last_layer():
    N, H = 3, 50
    model = QRNN(N, H, num_layers=3, dense=True, dropout=0.5).train()
    x = torch.randn(6, 4, N)
    out, _ = model(x)
    torch.testing.assert_close(out[..., :N], x, rtol=0, atol=0)
    hidden = out[..., N : N + 2 * H]
    zero_fraction = (hidden == 0).float().mean().item()
    assert 0.3 < zero_fraction < 0.7  # layers 1 and 2 are dropped ...
    assert (out[..., N + 2 * H :] != 0).all()  # ... the last layer's output is not
    # the last layer read exactly the dropped features that the output shows
    h3, _, _ = model.layers[2](out[..., : N + 2 * H])
    torch.testing.assert_close(out[..., N + 2 * H :], h3)
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0], rtol=0, atol=0)
    assert (model(x)[0] != 0).all()


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(window=(2, 1)), r"window must be an integer >= 1 \(every layer\) or a sequence of 3 integers >= 1 "
                              r"\(one per layer\), got \(2, 1\)"),
        (dict(window=(2, 0, 1)), r"window\[1\] must be an integer >= 1, got 0"),
        (dict(dense=True, dense_output="all"), r"dense_output must be 'concat' or 'last', got 'all'"),
    ],
)
def test_dense_and_window_list_validation(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        QRNN(3, 4, num_layers=3, **kwargs)
