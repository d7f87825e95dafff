"""Where the experiments look for their data when no --data is given (quasirnn.data.paths)."""

from __future__ import annotations

import pytest

from quasirnn.errors import ConfigError
from quasirnn.experiments.classification import data_path


def test_imdb_is_looked_for_in_quasirnn_data_then_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QUASIRNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QUASIRNN_DATA", raising=False)
    with pytest.raises(ConfigError, match="--data is required"):
        data_path(None)
    monkeypatch.setenv("QUASIRNN_DATA", str(tmp_path / "data"))
    assert data_path(None) == str(tmp_path / "data" / "imdb")  # nothing exists: the error will name this one
    monkeypatch.delenv("QUASIRNN_DATA")
    (tmp_path / "cache" / "imdb").mkdir(parents=True)
    assert data_path(None) == str(tmp_path / "cache" / "imdb")
    monkeypatch.setenv("QUASIRNN_DATA", str(tmp_path / "data"))
    assert data_path(None) == str(tmp_path / "cache" / "imdb")  # $QUASIRNN_DATA/imdb does not exist
    (tmp_path / "data" / "imdb").mkdir(parents=True)
    assert data_path(None) == str(tmp_path / "data" / "imdb")
    assert data_path("given", "saved") == "given" and data_path(None, "saved") == "saved"
