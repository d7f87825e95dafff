"""``--quantize int8`` on the inference commands: ``lm eval | generate``, ``classify eval | predict``,
``translate eval | translate`` run tiny trained runs with int8 linear layers, close to float32."""

from __future__ import annotations

import json

import pytest

CLASSIFY = ("--emb-size", "16", "--hidden-size", "16", "--num-layers", "2", "--max-vocab", "2000", "--max-len", "80",
            "--val-size", "50", "--batch-size", "20", "--threads", "1", "--quiet")
TRANSLATE = ("--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--batch-size", "16",
             "--eval-batch-size", "30", "--max-len", "120", "--threads", "1", "--final-beam", "1", "--no-progress")


@pytest.fixture(scope="module")
def lm_run(synthetic, tmp_path_factory, cli, tiny):
    out = tmp_path_factory.mktemp("lm_int8") / "run"
    code, _, err = cli("lm", "train", "--data", synthetic, "--out", out, *tiny, "--epochs", "2", "--threads", "1")
    assert code == 0, err
    return out


def _json(cli, *argv) -> dict:
    code, out, err = cli(*argv, "--json", "--threads", "1")
    assert code == 0, err
    return json.loads(out)


def test_lm_eval_int8_perplexity_is_close_to_float32(lm_run, cli):
    fp = _json(cli, "lm", "eval", "--checkpoint", lm_run)
    q = _json(cli, "lm", "eval", "--checkpoint", lm_run, "--quantize", "int8")
    assert q["tokens"] == fp["tokens"] and q["ppl"] != fp["ppl"]  # int8 weights really ran
    assert abs(q["ppl"] / fp["ppl"] - 1) < 0.03, (q["ppl"], fp["ppl"])
    cached = _json(cli, "lm", "eval", "--checkpoint", lm_run, "--quantize", "int8", "--cache-pointer")
    assert abs(cached["plain_loss"] / fp["loss"] - 1) < 0.03


def test_lm_generate_int8(lm_run, cli):
    code, out, err = cli("lm", "generate", "--checkpoint", lm_run, "--prompt", "w3 w4", "--words", "12", "--top-k", "1",
                         "--quantize", "int8", "--threads", "1")
    assert code == 0, err
    assert len(out.split()) >= 6 and all(w.startswith("w") or w == "<unk>" for w in out.split())


@pytest.mark.parametrize("argv, message", [
    (("lm", "generate", "--prompt", "w1", "--dtype", "float16"), "an int8 model takes float32 inputs: leave --dtype out"),
    (("lm", "eval", "--precision", "bf16"), "an int8 model takes float32 inputs: leave --precision out, or give 32"),
])
def test_int8_with_another_dtype_is_a_one_line_error(lm_run, cli, argv, message):
    code, _, err = cli(*argv, "--checkpoint", lm_run, "--quantize", "int8")
    assert code != 0 and message in err and err.count("\n") == 1, err


def test_an_unknown_scheme_is_refused_by_the_parser(lm_run, cli):
    code, _, err = cli("lm", "eval", "--checkpoint", lm_run, "--quantize", "int4")
    assert code == 2 and "--quantize: invalid choice: 'int4' (choose from 'int8')" in err


def test_classify_eval_and_predict_int8(imdb_slice, tmp_path, cli):
    out = tmp_path / "clf"
    code, _, err = cli("classify", "train", "--data", imdb_slice, "--out", out, *CLASSIFY, "--max-steps", "30")
    assert code == 0, err
    fp = _json(cli, "classify", "eval", "--checkpoint", out, "--split", "val")
    q = _json(cli, "classify", "eval", "--checkpoint", out, "--split", "val", "--quantize", "int8")
    # a model 30 steps in is near chance, its probabilities near 0.5: a few of the 50 reviews may flip
    assert q["reviews"] == fp["reviews"] and abs(q["accuracy"] - fp["accuracy"]) <= 0.1
    assert q["loss"] != fp["loss"] and abs(q["loss"] / fp["loss"] - 1) < 0.03
    code, stdout, err = cli("classify", "predict", "--checkpoint", out, "--quantize", "int8", "--threads", "1",
                            "A wonderful film.", "Dull.")
    assert code == 0 and len(stdout.splitlines()) == 2, err


def test_translate_eval_and_translate_int8(multi30k_slice, tmp_path, cli):
    out = tmp_path / "tr"
    code, _, err = cli("translate", "train", "--data", multi30k_slice, "--out", out, *TRANSLATE, "--max-steps", "3")
    assert code == 0, err
    q = _json(cli, "translate", "eval", "--checkpoint", out, "--data", multi30k_slice, "--split", "val", "--beam", "1",
              "--quantize", "int8")
    assert q["sentences"] == 60 and 0 <= q["bleu"] <= 100
    code, stdout, err = cli("translate", "translate", "--checkpoint", out, "--beam", "2", "--quantize", "int8",
                            "--threads", "1", "Ein Hund läuft.")
    assert code == 0 and stdout.count("\n") == 1, err
