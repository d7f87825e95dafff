"""Every train command's options are built from its configuration's fields and read back into it."""

import argparse

import pytest

from quasirnn.cli import classify, lm, translate
from quasirnn.cli.common import add_config_options, given_options
from quasirnn.training.options import GROUPS


@pytest.mark.parametrize("command", [lm.EXPERIMENT, classify.EXPERIMENT, translate.EXPERIMENT], ids=lambda c: c.name)
def test_every_option_is_a_config_field_with_help_and_reads_back(command):
    parser = argparse.ArgumentParser()
    add_config_options(parser, command)
    config = type(command.defaults)
    options = config.options()
    assert all(option.help and option.group in (*GROUPS, None) for _, option in options)
    assert given_options(parser.parse_args([]), config()) == {}
    flags = {"cell": "lstm", "zoneout": "0", "num_layers": "2", "lr": "0.25", "epochs": "3", "device": "cpu"}
    argv = [arg for name, value in flags.items() for arg in ("--" + name.replace("_", "-"), value)]
    given = given_options(parser.parse_args(argv), config())
    assert given == {"cell": "lstm", "zoneout": 0.0, "num_layers": 2, "lr": 0.25, "epochs": 3, "device": "cpu"}
    assert config().replace(**given).optim.lr == 0.25
