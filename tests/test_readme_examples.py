"""Every Python example of README.md runs as pasted into a fresh interpreter on a CPU machine.

Each ```python block runs alone in a new process, in a scratch working directory. A block may say
what it needs in its first lines, as a comment a reader sees too:

- ``# needs a CUDA GPU``: skipped without one;
- ``# needs the sru package: pip install sru``: skipped where it is not installed (the test extra
  installs it);
- ``# needs runs/ptb-qrnn, the run of the training command in "Two commands"``: a tiny language
  model is trained there first (on a small corpus, in seconds), as the user's command would have.

Any other first-line ``# needs`` comment fails the test, so a new requirement gets a rule here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import quasirnn

README = Path(__file__).resolve().parents[1] / "README.md"
SRC = Path(quasirnn.__file__).resolve().parents[1]
NEEDS = {
    "# needs a CUDA GPU": "cuda",
    "# needs the sru package: pip install sru": "sru",
    '# needs runs/ptb-qrnn, the run of the training command in "Two commands"': "run",
}


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _train_tiny_run(cwd: Path) -> None:
    """runs/ptb-qrnn in ``cwd``: a small QRNN language model of a tiny corpus with the README's words."""
    data = cwd / "ptb"
    data.mkdir()
    words = "the company said it will sell its shares to a new group of investors".split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20
    for split, count in (("train", len(lines)), ("valid", 30), ("test", 30)):
        (data / f"ptb.{split}.txt").write_text("\n".join(lines[:count]) + "\n")
    command = [sys.executable, "-m", "quasirnn", "lm", "train", "--data", str(data), "--out", "runs/ptb-qrnn",
               "--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--bptt", "10", "--batch-size", "4",
               "--eval-batch-size", "4", "--max-steps", "5", "--quiet", "--no-progress"]
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_the_readme_has_python_examples():
    assert len(_blocks()) >= 6


@pytest.mark.parametrize("line, code", _blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_a_readme_example_runs_as_pasted(line, code, tmp_path):
    header = [row.strip() for row in code.splitlines() if row.strip().startswith("# needs")]
    unknown = [row for row in header if row not in NEEDS]
    assert not unknown, f"README.md line {line}: no rule for {unknown} in {__file__}"
    needs = {NEEDS[row] for row in header}
    if "cuda" in needs and not torch.cuda.is_available():
        pytest.skip("a CUDA GPU example")
    if "sru" in needs and importlib.util.find_spec("sru") is None:
        pytest.skip("the sru package is not installed")
    if "run" in needs:
        _train_tiny_run(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"README.md line {line}:\n{code}\n{done.stderr}"
