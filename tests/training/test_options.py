"""A configuration field's command-line option: the value parsers, and the options a config class offers."""

import argparse
from dataclasses import dataclass

import pytest

from quasirnn.training.config import Optimisation, RunOptions, TrainingConfig, fixed, section
from quasirnn.training.options import cutoff_list, nonnegative_int, positive_int, probability, window_list


@pytest.mark.parametrize("parse, text, value", [(positive_int, "7", 7), (nonnegative_int, "0", 0),
                                                (probability, "0.25", 0.25), (window_list, "3", 3),
                                                (window_list, "6,2,2", [6, 2, 2]), (cutoff_list, "20,300", [20, 300]),
                                                (window_list, "2,0", [2, 0])])
def test_parsers_read_values(parse, text, value):
    """A window list is read, not checked: the model checks the widths (tests/experiments/test_model_rules.py)."""
    assert parse(text) == value


@pytest.mark.parametrize("parse, text, message", [
    (positive_int, "0", "must be >= 1, got 0"), (positive_int, "x", "expected an integer, got 'x'"),
    (nonnegative_int, "-2", "must be >= 0, got -2"), (probability, "1", r"must be in \[0, 1\), got 1"),
    (window_list, "2,a", "expected an integer or a comma-separated list, got '2,a'"),
    (cutoff_list, "300,20", "cutoffs must be increasing integers >= 1, got '300,20'"),
])
def test_parsers_refuse_in_one_line(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}$"):
        parse(text)


def test_options_follow_the_declaration_of_the_command_class():
    """A section declared again by the command (with its defaults) lists its options where it is declared."""

    @dataclass
    class Toy(TrainingConfig):
        width: int = fixed(8, "width (default: {default})", positive_int)
        optim: Optimisation = section(Optimisation, lr=0.5)
        depth: int = fixed(2, "depth (default: {default})", positive_int)
        run: RunOptions = section(RunOptions)

    names = [name for name, _ in Toy.options()]
    assert names[:3] == ["width", "optimizer", "lr"] and names.index("depth") == names.index("seed") + 1
    assert "cell" not in names  # the base field has no option
