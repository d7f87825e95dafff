"""benchmarks/awd_compare.py's own parts, without awd-lstm-lm: the reduced corpus, the option
mapping, the log parsing and the patches' descriptions. The comparison itself runs (tiny) only when
``QUASIRNN_AWD_CHECKOUT`` and ``QUASIRNN_TORCHQRNN_CHECKOUT`` name the two checkouts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quasirnn.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "awd_compare.py"


def _ptb(tmp_path: Path) -> Path:
    src = tmp_path / "ptb"
    src.mkdir()
    (src / "ptb.train.txt").write_text(" a b c \n b c <unk> \n d e \n")
    (src / "ptb.valid.txt").write_text(" a x \n b \n c y \n")
    (src / "ptb.test.txt").write_text(" z a \n")
    return src


def test_reduce_corpus_keeps_first_lines_and_maps_unseen_words_to_unk(awd_compare, tmp_path):
    stats = awd_compare.reduce_corpus(_ptb(tmp_path), tmp_path / "out", {"train": 2, "valid": 2, "test": 5})
    assert (tmp_path / "out" / "train.txt").read_text() == " a b c \n b c <unk> \n"
    assert (tmp_path / "out" / "valid.txt").read_text() == " a <unk> \n b \n"  # x unseen, line 3 cut
    assert (tmp_path / "out" / "test.txt").read_text() == " <unk> a \n"
    assert stats["train"] == {"lines": 2, "tokens": 8, "unk_replaced": 0, "vocab": 5}  # a b c <unk> <eos>
    assert stats["valid"] == {"lines": 2, "tokens": 5, "unk_replaced": 1}
    assert stats["test"]["unk_replaced"] == 1
    # awd-lstm-lm's dictionary over the reduced splits is then the train vocabulary, in first-seen order
    assert awd_compare.awd_dictionary(tmp_path / "out") == {"a": 0, "b": 1, "c": 2, "<eos>": 3, "<unk>": 4}


def test_reduce_corpus_names_the_missing_file(awd_compare, tmp_path):
    with pytest.raises(FileNotFoundError, match="ptb.train.txt"):
        awd_compare.reduce_corpus(tmp_path, tmp_path / "out", {"train": 1, "valid": 1, "test": 1})


def _pairs(argv: list[str]) -> dict[str, str]:
    out, i = {}, 0
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[argv[i]] = argv[i + 1]
            i += 2
        else:
            out[argv[i]] = True
            i += 1
    return out


@pytest.mark.parametrize("optimizer, lr", [("sgd", 30.0), ("adam", 0.002)])
def test_option_mapping_gives_lm_train_the_same_hyper_parameters(awd_compare, tmp_path, optimizer, lr):
    cfg = dict(awd_compare.DEFAULTS)
    theirs = _pairs(awd_compare.awd_args(cfg, optimizer, lr, 3, tmp_path, tmp_path / "m.pt"))
    ours_argv = awd_compare.our_args(cfg, optimizer, lr, 3, tmp_path, tmp_path / "run")
    ours = build_parser().parse_args(ours_argv)  # lm train accepts every option
    same = {"--emsize": "emb_size", "--nhid": "hidden_size", "--nlayers": "num_layers", "--batch_size": "batch_size",
            "--bptt": "bptt", "--clip": "clip", "--dropout": "dropout", "--dropouth": "dropouth",
            "--dropouti": "dropouti", "--dropoute": "dropoute", "--wdrop": "wdrop", "--alpha": "alpha",
            "--beta": "beta", "--wdecay": "wdecay", "--seed": "seed", "--nonmono": "nonmono", "--lr": "lr",
            "--epochs": "epochs", "--optimizer": "optimizer"}
    for awd_name, our_name in same.items():
        assert str(getattr(ours, our_name)) == theirs[awd_name], awd_name
    assert theirs["--model"] == "QRNN" and theirs["--cuda"] is True  # awd's --cuda turns CUDA off
    # awd-lstm-lm's fixed choices: variable BPTT, tied full softmax, eval batch 10 / test 1, best model
    # tested, no decay on plateau, float32
    assert ours.variable_bptt and ours.tie_weights and ours.softmax == "full" and ours.keep_best
    assert (ours.eval_batch_size, ours.test_batch_size, ours.lr_decay, ours.precision) == (10, 1, 1.0, "32")


AWD_LOG = """Producing dataset...
| end of epoch   1 | time: 10.50s | valid loss  5.70 | valid ppl   298.87 | valid bpc    8.223
Switching to ASGD
| end of epoch   2 | time:  9.25s | valid loss  5.60 | valid ppl   270.43 | valid bpc    8.079
| End of training | test loss  5.50 | test ppl   244.69 | test bpc    7.935
"""


def test_parse_awd_reads_epochs_switch_and_test(awd_compare):
    r = awd_compare.parse_awd(AWD_LOG)
    assert [(e, s) for e, s, _ in r["epochs"]] == [(1, 10.5), (2, 9.25)]
    assert r["epochs"][0][2] == 298.87  # the printed ppl (exp of the 2-decimal loss would be 3 % off)
    assert r["asgd_after"] == 1 and r["test_ppl"] == 244.69


def test_parse_ours_reads_a_run_and_its_switch(awd_compare, tmp_path):
    (tmp_path / "log.jsonl").write_text(
        '{"split": "train", "step": 1, "epoch": 0.5, "loss": 6.0, "train_time_s": 2.0, "time": 100.0}\n'
        '{"split": "valid", "step": 2, "epoch": 1, "loss": 5.9, "ppl": 365.0, "train_time_s": 4.0, "time": 105.0}\n'
        '{"split": "valid", "step": 4, "epoch": 2, "loss": 5.8, "ppl": 330.0, "train_time_s": 8.0, "time": 111.0}\n')
    (tmp_path / "metrics.json").write_text('{"test_ppl": 340.0, "history": [{"epoch": 1, "averaged": false}, '
                                           '{"epoch": 2, "averaged": true}]}')
    r = awd_compare.parse_ours(tmp_path)
    assert r["epochs"] == [(1, 7.0, 365.0), (2, 6.0, 330.0)]  # wall seconds since the first step began
    assert r["asgd_after"] == 1 and r["test_ppl"] == 340.0
    text = "epoch 2 | valid ppl 330.00 (no improvement) | step 4 | train time 8 s | switched to averaged SGD (NT-ASGD)"
    assert awd_compare.parse_ours(tmp_path, text)["asgd_after"] == 2


def test_table_puts_both_runs_side_by_side(awd_compare):
    awd = {"epochs": [(1, 10.0, 300.0), (2, 9.0, 270.0)]}
    ours = {"epochs": [(1, 5.0, 306.0), (2, 4.5, 270.0)]}
    text = awd_compare.table(awd, ours, valid_rows=1e9)  # no correction at this size
    assert "| 1 | 300.00 | 300.00 | 306.00 | 1.020 | 10.0 | 5.0 |" in text
    assert "| 2 | 270.00 | 270.00 | 270.00 | 1.000 | 9.0 | 4.5 |" in text
    # awd's mean over R rows of which R − 1 are predicted: exp(5.8 · 915/914) = 330.3 · 1.0064
    assert "| 1 | 330.30 | 332.40 | 306.00 | 0.921 |" in awd_compare.table({"epochs": [(1, 1.0, 330.3)]}, ours, 915)


def test_every_patch_file_is_described(awd_compare):
    files = sorted(p.name for p in (ROOT / "benchmarks" / "awd_patches").glob("*.patch"))
    assert files == sorted(awd_compare.FIXES)
    for name in files:
        touched = re.findall(r"^\+\+\+ b/(\S+)", (ROOT / "benchmarks" / "awd_patches" / name).read_text(), re.M)
        for path in touched:  # each patched file is named in a printed fix
            assert any(fix.startswith(Path(path).as_posix()) for fix in awd_compare.FIXES[name]), path


@pytest.mark.skipif(not (os.environ.get("QUASIRNN_AWD_CHECKOUT") and os.environ.get("QUASIRNN_TORCHQRNN_CHECKOUT")),
                    reason="set QUASIRNN_AWD_CHECKOUT and QUASIRNN_TORCHQRNN_CHECKOUT to run awd-lstm-lm")
def test_comparison_runs_on_a_tiny_corpus(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--awd", os.environ["QUASIRNN_AWD_CHECKOUT"],
                           "--qrnn", os.environ["QUASIRNN_TORCHQRNN_CHECKOUT"], "--train-lines", "200",
                           "--valid-lines", "40", "--test-lines", "20", "--epochs", "1", "--optimizer", "sgd",
                           "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^\| 1 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", proc.stdout, re.M)
    awd = float(re.search(r"awd pointer.py: valid ppl ([\d.]+)", proc.stdout)[1])
    ours = float(re.search(r"pointer.py's exp\(sum/N\): ([\d.]+)", proc.stdout)[1])
    assert ours == pytest.approx(awd, rel=1e-3)  # the same model, the same cache
