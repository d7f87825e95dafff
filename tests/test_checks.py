"""The shared argument checks: what they accept, and the message of what they refuse."""

import math

import numpy as np
import pytest

from quasirnn._checks import check_int, check_probability, check_qrnn_only


@pytest.mark.parametrize("value, minimum", [(1, 1), (7, 1), (0, 0), (np.int64(3).item(), 1)])
def test_check_int_accepts(value, minimum):
    check_int("n", value, minimum)


@pytest.mark.parametrize("value, minimum", [(0, 1), (-1, 0), (True, 0), (2.0, 1), ("3", 1), (None, 1)])
def test_check_int_refuses_with_name_range_and_value(value, minimum):
    with pytest.raises(ValueError, match=rf"^n must be an integer >= {minimum}, got {value!r}$"):
        check_int("n", value, minimum)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 0.999, np.float32(0.25)])
def test_check_probability_accepts(value):
    check_probability("dropout", value)


@pytest.mark.parametrize("value", [1.0, 1, -0.1, math.nan, math.inf, True, "0.1", None])
def test_check_probability_refuses(value):
    with pytest.raises(ValueError, match=r"^dropout must be a probability in \[0, 1\), got "):
        check_probability("dropout", value)


@pytest.mark.parametrize("cell, value", [("qrnn", 0.3), ("lstm", 0.0), ("sru", 0)])
def test_check_qrnn_only_accepts_qrnn_or_off(cell, value):
    check_qrnn_only("zoneout", value, cell)


@pytest.mark.parametrize("cell", ["lstm", "sru"])
def test_check_qrnn_only_refuses_other_cells(cell):
    with pytest.raises(ValueError, match=rf"^zoneout is implemented for the qrnn cell only, got zoneout=0.25 with cell='{cell}'$"):
        check_qrnn_only("zoneout", 0.25, cell)
