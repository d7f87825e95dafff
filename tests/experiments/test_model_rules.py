"""The configurations check the models' rules with the functions the models' constructors call,
and name the command-line options in their messages."""

import pytest

from quasirnn.errors import ConfigError
from quasirnn.experiments.classification import ClassifyConfig
from quasirnn.experiments.language_model import LMConfig
from quasirnn.experiments.translation import TranslateConfig
from quasirnn.models import LanguageModel, TextClassifier

CONFIGS = [LMConfig, ClassifyConfig, TranslateConfig]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("cell", ["lstm", "sru"])
def test_zoneout_is_refused_with_another_cell(config, cell):
    with pytest.raises(ConfigError, match=rf"^--zoneout applies to the qrnn cell only; use 0 with --cell {cell}$"):
        config(cell=cell, zoneout=0.2)
    assert config(cell=cell, zoneout=0.0).zoneout == 0.0
    assert config(cell="qrnn", zoneout=0.2).zoneout == 0.2


@pytest.mark.parametrize("config, name", [(LMConfig, "window"), (ClassifyConfig, "window"),
                                          (TranslateConfig, "encoder_window"), (TranslateConfig, "decoder_window")])
def test_a_window_list_needs_one_width_per_layer(config, name):
    option = "--" + name.replace("_", "-")
    with pytest.raises(ConfigError, match=rf"^{option} lists 3 widths for 2 layers; give one width per layer"):
        config(num_layers=2, **{name: [3, 2, 1]})
    with pytest.raises(ConfigError, match=rf"^{option} lists 1 width for 2 layers;"):
        config(num_layers=2, **{name: [3]})
    with pytest.raises(ConfigError, match=rf"^{option}: {name}\[1\] must be an integer >= 1, got 0$"):
        config(num_layers=2, **{name: [3, 0]})
    assert getattr(config(num_layers=2, **{name: [3, 1]}).resolved(), name) == [3, 1]


def test_the_config_and_the_model_refuse_the_same_combinations():
    """Whatever the config accepts, the model builds; what it refuses, the model refuses too."""
    for cell, zoneout, window in [("lstm", 0.1, None), ("qrnn", 0.1, [2, 1]), ("sru", 0.0, [2, 1, 1]), ("qrnn", 0.0, 2)]:
        try:
            LMConfig(cell=cell, zoneout=zoneout, window=window, num_layers=3)
            accepted = True
        except ConfigError:
            accepted = False
        for model in (LanguageModel, TextClassifier):
            try:
                model(50, emb_size=4, hidden_size=4, num_layers=3, cell=cell, zoneout=zoneout, window=window)
                built = True
            except ValueError:
                built = False
            assert built == accepted, (model.__name__, cell, zoneout, window)
