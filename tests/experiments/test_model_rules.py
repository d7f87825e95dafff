"""The model sections check nothing themselves: the models their experiments build from them do,
once, and the builders name the command-line options in the models' messages."""

import pytest

from quasirnn.errors import ConfigError
from quasirnn.experiments.classification import ClassifierOptions, ClassifyConfig, build_classifier
from quasirnn.experiments.language_model import LanguageModelOptions, LMConfig, build_model
from quasirnn.experiments.translation import TranslateConfig, TranslatorOptions, build_translator
from quasirnn.models import LanguageModel, TextClassifier

SECTIONS = {
    "lm": (LanguageModelOptions, lambda options: build_model(options, 50), ("lstm", "sru")),
    "classify": (ClassifierOptions, lambda options: build_classifier(options, 50), ("lstm", "sru")),
    "translate": (TranslatorOptions, lambda options: build_translator(options, 20, 20), ("lstm",)),
}
SMALL = dict(emb_size=4, hidden_size=4)


@pytest.mark.parametrize("experiment", SECTIONS)
def test_zoneout_is_refused_with_another_cell(experiment):
    options, build, cells = SECTIONS[experiment]
    for cell in cells:
        with pytest.raises(ConfigError, match=rf"^--zoneout applies to the qrnn cell only; use 0 with --cell {cell}$"):
            build(options(cell=cell, zoneout=0.2, **SMALL))
        assert options(cell=cell, zoneout=0.2).zoneout == 0.2  # the section holds it; the model refuses it
        build(options(cell=cell, zoneout=0.0, **SMALL))
    build(options(cell="qrnn", zoneout=0.2, **SMALL))


@pytest.mark.parametrize("experiment, name", [("lm", "window"), ("classify", "window"),
                                              ("translate", "encoder_window"), ("translate", "decoder_window")])
def test_a_window_list_needs_one_width_per_layer(experiment, name):
    options, build, _ = SECTIONS[experiment]
    option = "--" + name.replace("_", "-")
    with pytest.raises(ConfigError, match=rf"^{option} lists 3 widths for 2 layers; give one width per layer"):
        build(options(num_layers=2, **SMALL, **{name: [3, 2, 1]}))
    with pytest.raises(ConfigError, match=rf"^{option} lists 1 width for 2 layers;"):
        build(options(num_layers=2, **SMALL, **{name: [3]}))
    with pytest.raises(ConfigError, match=rf"^{option}: {name}\[1\] must be an integer >= 1, got 0$"):
        build(options(num_layers=2, **SMALL, **{name: [3, 0]}))
    with pytest.raises(ConfigError, match=rf"^{option}: {name} must be an integer >= 1, got 0$"):
        build(options(num_layers=2, **SMALL, **{name: 0}))
    assert getattr(options(num_layers=2, **{name: [3, 1]}).resolved(), name) == [3, 1]
    with pytest.raises(ConfigError, match=rf"^{option} lists 3 widths for 2 layers"):
        options(num_layers=2, **{name: [3, 2, 1]}).resolved()


def test_the_builder_refuses_exactly_what_the_model_refuses():
    """The section takes any combination; building it raises a ConfigError where the model raises."""
    for cell, zoneout, window in [("lstm", 0.1, None), ("qrnn", 0.1, [2, 1]), ("sru", 0.0, [2, 1, 1]), ("qrnn", 0.0, 2)]:
        arguments = dict(emb_size=4, hidden_size=4, num_layers=3, cell=cell, zoneout=zoneout, window=window)
        for model, options, build in ((LanguageModel, LanguageModelOptions, build_model),
                                      (TextClassifier, ClassifierOptions, build_classifier)):
            section = options(**arguments)  # never raises
            try:
                model(50, **arguments)
                built = True
            except ValueError:
                built = False
            try:
                build(section, 50)
                accepted = True
            except ConfigError:
                accepted = False
            assert built == accepted, (model.__name__, cell, zoneout, window)


@pytest.mark.parametrize("experiment", SECTIONS)
def test_other_model_errors_name_their_option(experiment):
    options, build, _ = SECTIONS[experiment]
    with pytest.raises(ConfigError, match=r"^--backend: backend must be one of .*got 'fortran'$"):
        build(options(backend="fortran", **SMALL))
    with pytest.raises(ConfigError, match=r"^--cell: cell must be one of .*got 'gru'$"):
        build(options(cell="gru", **SMALL))


@pytest.mark.parametrize("config", [LMConfig, ClassifyConfig, TranslateConfig])
def test_the_model_section_is_stored_flat_and_read_back(config):
    values = config().replace(num_layers=2, hidden_size=8, backend="torch", lr=0.5).to_dict()
    assert values["num_layers"] == 2 and values["backend"] == "torch" and "model" not in values
    again = config.from_dict(values)
    assert again.model.num_layers == 2 and again.model.backend == "torch" and again.optim.lr == 0.5
    assert config.from_dict({k: v for k, v in values.items() if k != "backend"}).model.backend == "auto"  # older runs
    names = [f.name for f in config._flat_fields()]  # every field, sections expanded
    assert len(names) == len(set(names)) == len(values)  # unique across the sections: the flat dict holds them all


@pytest.mark.parametrize("window, layers, converted", [(2, 4, [2, 1, 1, 1]), (5, 1, [5]), ([3, 2], 2, [3, 2]),
                                                       (None, 3, None)])
def test_an_old_checkpoints_int_window_was_the_first_layers(window, layers, converted):
    assert LanguageModelOptions.upgrade({"window": window, "num_layers": layers})["window"] == converted
    old = TranslateConfig.from_dict({"num_layers": layers, "encoder_window": window, "decoder_window": window})
    assert old.model.encoder_window == old.model.decoder_window == converted


def test_an_old_int_window_builds_the_model_it_built_then():
    legacy = LMConfig.from_dict({"window": 2, "num_layers": 3, "emb_size": 4, "hidden_size": 4})
    assert build_model(legacy.model, 20).windows == (2, 1, 1)  # an old configuration's int: the first layer's width


@pytest.mark.parametrize("experiment", SECTIONS)
def test_a_run_stores_the_widths_its_model_was_built_with(experiment):
    options, build, cells = SECTIONS[experiment]
    names = list(options.window_patterns)
    given = options(num_layers=3, **SMALL, **{name: 3 for name in names})
    assert [getattr(given.as_built(build(given)), name) for name in names] == [[3, 3, 3]] * len(names)
    unset = options(num_layers=2, **SMALL)
    assert [getattr(unset.as_built(build(unset)), name) for name in names] == [
        list(options.window_patterns[name].widths(2)) for name in names]
    lstm = options(cell="lstm", num_layers=2, **SMALL)
    assert all(getattr(lstm.as_built(build(lstm)), name) is None for name in names)  # no convolution to store
