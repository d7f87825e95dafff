"""The paper's presets, defined once in quasirnn.models.presets, and the old meaning of an int window."""

import pytest

from quasirnn.models import LanguageModel, QRNNTranslator, TextClassifier
from quasirnn.models.presets import (AWD_QRNN_WINDOWS, IMDB_WINDOWS, TRANSLATOR_DECODER_WINDOWS,
                                     TRANSLATOR_ENCODER_WINDOWS, legacy_windows)


def test_patterns_fit_any_layer_count():
    assert TRANSLATOR_ENCODER_WINDOWS.widths(4) == (6, 2, 2, 2)
    assert TRANSLATOR_DECODER_WINDOWS.widths(4) == (2, 1, 1, 1)
    assert TRANSLATOR_ENCODER_WINDOWS.widths(1) == (6,)
    assert AWD_QRNN_WINDOWS.widths(3) == IMDB_WINDOWS.widths(3) == (2, 1, 1)


@pytest.mark.parametrize("window, layers, converted", [(2, 4, (2, 1, 1, 1)), (5, 1, (5,)), ([3, 2], 2, [3, 2]),
                                                       ((1, 1, 4), 3, (1, 1, 4))])
def test_legacy_windows(window, layers, converted):
    assert legacy_windows(window, layers) == converted


def test_model_defaults_are_the_presets():
    assert LanguageModel(20, 4, 6, num_layers=3).windows == (2, 1, 1)
    assert TextClassifier(20, 4, 6, num_layers=4).windows == (2, 1, 1, 1)
    translator = QRNNTranslator(9, 7, emb_size=4, hidden_size=6, num_layers=3)
    assert translator.encoder_windows == (6, 2, 2) and translator.decoder_windows == (2, 1, 1)
    assert [l.window for l in translator.encoder] == [6, 2, 2]
    assert QRNNTranslator(9, 7, 4, 6, num_layers=2, encoder_window=3).encoder_windows == (3, 3)
