"""One meaning of a stack's ``window``: an int for every layer, a sequence one width per layer."""

import pytest
import torch

from quasirnn import QRNN
from quasirnn.nn import resolve_windows


@pytest.mark.parametrize("window, layers, widths", [(3, 1, (3,)), (2, 4, (2, 2, 2, 2)), ([6, 2, 1], 3, (6, 2, 1)),
                                                    ((1, 5), 2, (1, 5))])
def test_resolve_windows(window, layers, widths):
    assert resolve_windows(window, layers) == widths


@pytest.mark.parametrize("window, pattern", [
    (0, r"^window must be an integer >= 1, got 0$"),
    (True, r"^window must be an integer >= 1, got True$"),
    ([2, 1], r"^window must be an integer >= 1 \(every layer\) or a sequence of 3 integers >= 1 \(one per layer\), "
             r"got \[2, 1\]$"),
    ("222", r"^window must be an integer >= 1, got '222'$"),
    (2.0, r"^window must be an integer >= 1, got 2.0$"),
    ([2, 1.0, 1], r"^window\[1\] must be an integer >= 1, got 1.0$"),
    ([2, 1, 0], r"^window\[2\] must be an integer >= 1, got 0$"),
])
def test_resolve_windows_refuses(window, pattern):
    with pytest.raises(ValueError, match=pattern):
        resolve_windows(window, 3)


def test_qrnn_reads_an_int_window_in_every_layer():
    """QRNN(8, 8, num_layers=3, window=2) reads 2·8 features per step in every layer."""
    qrnn = QRNN(8, 8, num_layers=3, window=2)
    assert [layer.linear.in_features for layer in qrnn.layers] == [16, 16, 16]
    assert [layer.window for layer in QRNN(8, 8, 3, window=[3, 1, 2]).layers] == [3, 1, 2]
    out, _ = qrnn(torch.randn(4, 2, 8))
    assert out.shape == (4, 2, 8)
    with pytest.raises(ValueError, match="window must be"):
        QRNN(8, 8, num_layers=2, window=[2, 1, 1])


def test_a_sequence_of_another_length_says_how_many_widths_for_how_many_layers():
    from quasirnn.nn.windows import WindowCountError

    with pytest.raises(WindowCountError) as caught:
        resolve_windows((6, 2, 2), 2, "encoder_window")
    assert (caught.value.name, caught.value.count, caught.value.num_layers) == ("encoder_window", 3, 2)
    assert isinstance(caught.value, ValueError)
