"""The paper's window patterns, defined once in quasirnn.models.paper_windows, and the one function
(layer_windows) that gives a model's widths: the ones asked for, else the paper's."""

import pytest

from quasirnn.models import LanguageModel, QRNNTranslator, TextClassifier
from quasirnn.models.paper_windows import (AWD_QRNN_WINDOWS, IMDB_WINDOWS, TRANSLATOR_DECODER_WINDOWS,
                                           TRANSLATOR_ENCODER_WINDOWS, layer_windows)
from quasirnn.nn.windows import WindowCountError


def test_patterns_fit_any_layer_count():
    assert TRANSLATOR_ENCODER_WINDOWS.widths(4) == (6, 2, 2, 2)
    assert TRANSLATOR_DECODER_WINDOWS.widths(4) == (2, 1, 1, 1)
    assert TRANSLATOR_ENCODER_WINDOWS.widths(1) == (6,)
    assert AWD_QRNN_WINDOWS.widths(3) == IMDB_WINDOWS.widths(3) == (2, 1, 1)


@pytest.mark.parametrize("window, layers, widths", [(None, 3, (6, 2, 2)), (None, 1, (6,)), (3, 2, (3, 3)),
                                                    ([4, 1], 2, (4, 1))])
def test_layer_windows_are_the_given_ones_else_the_papers(window, layers, widths):
    assert layer_windows(window, TRANSLATOR_ENCODER_WINDOWS, layers) == widths


def test_layer_windows_apply_the_rule_of_nn():
    with pytest.raises(WindowCountError) as caught:
        layer_windows([2, 1, 1], AWD_QRNN_WINDOWS, 2, "decoder_window")
    assert (caught.value.name, caught.value.count, caught.value.num_layers) == ("decoder_window", 3, 2)
    with pytest.raises(ValueError, match=r"^window\[1\] must be an integer >= 1, got 0$"):
        layer_windows([2, 0], AWD_QRNN_WINDOWS, 2)


def test_model_defaults_are_the_paper_windows():
    assert LanguageModel(20, 4, 6, num_layers=3).windows == (2, 1, 1)
    assert TextClassifier(20, 4, 6, num_layers=4).windows == (2, 1, 1, 1)
    translator = QRNNTranslator(9, 7, emb_size=4, hidden_size=6, num_layers=3)
    assert translator.encoder_windows == (6, 2, 2) and translator.decoder_windows == (2, 1, 1)
    assert [l.window for l in translator.encoder] == [6, 2, 2]
    assert QRNNTranslator(9, 7, 4, 6, num_layers=2, encoder_window=3).encoder_windows == (3, 3)


@pytest.mark.parametrize("model", [LanguageModel, TextClassifier])
def test_the_backend_reaches_every_recurrent_layer(model):
    for cell in ("qrnn", "sru"):
        built = model(20, 4, 6, num_layers=2, cell=cell, backend="torch")
        layers = [m for m in built.modules() if hasattr(m, "backend") and m is not built]
        assert layers and all(layer.backend == "torch" for layer in layers), cell
    with pytest.raises(ValueError, match="backend must be one of"):
        model(20, 4, 6, num_layers=2, cell="qrnn", backend="fortran")
    translator = QRNNTranslator(9, 7, 4, 6, num_layers=2, backend="reference")
    assert {layer.backend for layer in (*translator.encoder, *translator.decoder)} == {"reference"}
