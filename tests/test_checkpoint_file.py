"""quasirnn.checkpoint_file: atomic writes, weights_only loading, kind and content checks."""

from __future__ import annotations

import zipfile

import pytest
import torch
from torch import nn

from quasirnn.checkpoint_file import (
    FORMAT,
    VERSION,
    atomic_write,
    atomic_write_text,
    load_checkpoint,
    load_module_state,
    save_checkpoint,
)
from quasirnn.errors import CheckpointError


def test_roundtrip(tmp_path):
    model = nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "sub" / "c.pt", "toy", {"size": 3}, model=model.state_dict(),
                           vocab=["a", "b"], progress={"step": 7, "best": float("inf")}, rng=torch.get_rng_state())
    ckpt = load_checkpoint(path, "toy", required=("model", "vocab"))
    assert (ckpt["format"], ckpt["version"], ckpt["kind"]) == (FORMAT, VERSION, "toy")
    assert ckpt["config"] == {"size": 3} and ckpt["vocab"] == ["a", "b"] and ckpt["progress"]["step"] == 7
    other = nn.Linear(3, 2)
    load_module_state(other, ckpt["model"], path)
    assert torch.equal(other.weight, model.weight)
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temp file left behind


def test_refuses_payload_that_weights_only_cannot_load(tmp_path):
    class Custom:
        pass

    with pytest.raises(TypeError, match=r"checkpoint\['extra'\]\['x'\]"):
        save_checkpoint(tmp_path / "c.pt", "toy", {}, extra={"x": Custom()})
    with pytest.raises(TypeError, match="TorchVersion"):
        save_checkpoint(tmp_path / "c.pt", "toy", {"torch": torch.__version__})
    assert not (tmp_path / "c.pt").exists()
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "c.pt", "toy", {}, format="other")


def test_atomic_write_replaces_and_cleans_up(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_text() == "new"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file at"):
        load_checkpoint(tmp_path / "absent.pt")


def test_other_kind(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", "classifier", {})
    assert load_checkpoint(path)["kind"] == "classifier"  # any kind accepted when none is asked for
    with pytest.raises(CheckpointError, match="holds a 'classifier' checkpoint, not a 'language_model' one"):
        load_checkpoint(path, "language_model")


def test_not_a_quasirnn_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a quasirnn checkpoint"):
        load_checkpoint(path)


EXPECTED = "expected the checkpoint.pt of a quasirnn training run (or its output directory)"


@pytest.mark.parametrize("content, what", [
    (b"", "the file is empty"),
    (b"hello, not a zip", "it is a text file"),
    ("w1 w2 w3 — déjà vu\n".encode() * 400, "it is a text file"),  # a character cut by the sniffed bytes
    (b"# notes\n\nsome text\n", "it is a text file"),  # torch.load's 'Please file an issue' case
    (b"PK\x03\x04" + b"\x00" * 50, "it is truncated or corrupted (the end of its zip archive is missing)"),
    (b"\x00\x01\x02\xff" * 10, "it is another kind of file (neither a zip archive nor a pickle)"),
])
def test_garbage_files(tmp_path, content, what):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"{path} is not a readable quasirnn checkpoint: {what}; {EXPECTED}"


def test_the_legacy_torch_format_still_loads(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"format": FORMAT, "version": VERSION, "kind": "toy", "config": {"a": 1}, "w": torch.ones(2)}, path,
               _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    assert load_checkpoint(path, "toy")["config"] == {"a": 1}


def test_a_zip_archive_that_torch_did_not_write(tmp_path):
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == (f"{path} is not a readable quasirnn checkpoint: it is a zip archive that torch.save "
                               f"did not write; {EXPECTED}")


def test_truncated_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", "toy", {}, model=nn.Linear(50, 50).state_dict())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted") as info:
        load_checkpoint(path)
    assert str(info.value) == (f"{path} is not a readable quasirnn checkpoint: it is truncated or corrupted (the end "
                               f"of its zip archive is missing); {EXPECTED}")


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": nn.Linear(2, 2)}, path)  # a whole module: needs arbitrary unpickling
    with pytest.raises(CheckpointError, match="Unsupported global") as info:
        load_checkpoint(path)
    assert str(info.value) == (f"{path} is not a readable quasirnn checkpoint: it is corrupted, or holds objects that "
                               f"safe loading refuses (WeightsUnpickler error: Unsupported global: GLOBAL "
                               f"torch.nn.modules.linear.Linear was not an allowed global by default.); {EXPECTED}")


def test_newer_version_and_missing_keys(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1, "kind": "toy", "config": {}}, path)
    with pytest.raises(CheckpointError, match="version"):
        load_checkpoint(path)
    save_checkpoint(path, "toy", {})
    with pytest.raises(CheckpointError, match="missing model"):
        load_checkpoint(path, "toy", required=("model",))


def test_weights_that_do_not_fit_the_model(tmp_path):
    with pytest.raises(CheckpointError, match="c.pt: weights do not match"):
        load_module_state(nn.Linear(3, 2), nn.Linear(4, 2).state_dict(), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_module_state(nn.Linear(3, 2), {"weight": torch.zeros(2, 3)})
