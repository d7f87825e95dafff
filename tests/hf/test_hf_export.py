"""``quasirnn lm export --hf DIR``: the folder loads through the Auto classes and the pipeline, and
greedy generation from it gives the words of ``lm generate --top-k 1``."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline  # noqa: E402

import quasirnn.hf  # noqa: E402,F401
from quasirnn.experiments.language_model.generate import TextGenerator  # noqa: E402


@pytest.fixture(scope="module")
def folder(lm_run, cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "hf"
    code, stdout, err = cli("lm", "export", "--checkpoint", lm_run, "--hf", out)
    assert code == 0, err
    assert str(out) in stdout
    return out


def test_writes_config_weights_and_tokenizer(folder):
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names


def test_logits_equal_the_runs_model(folder, lm_run):
    model = AutoModelForCausalLM.from_pretrained(folder)
    ours = TextGenerator.load(lm_run, "cpu").model
    ids = torch.randint(0, ours.vocab_size, (2, 15))
    torch.testing.assert_close(model(ids).logits, ours(ids.t())[0].transpose(0, 1), atol=1e-5, rtol=0)


def test_tokenizer_reads_text_as_lm_generate_does(folder, lm_run):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generator = TextGenerator.load(lm_run, "cpu")
    for prompt in ("w3 w4", "w1  nosuchword w2", ""):
        assert tokenizer(prompt)["input_ids"] == generator.prompt_ids(prompt)


def test_greedy_generate_gives_the_words_of_lm_generate_top_k_1(folder, lm_run, cli):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer("w3 w4", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=30, do_sample=False)
    words = tokenizer.convert_ids_to_tokens(out[0, ids.size(1):].tolist())
    code, text, err = cli("lm", "generate", "--checkpoint", lm_run, "--prompt", "w3 w4", "--words", 30, "--top-k", 1)
    assert code == 0, err
    assert words.count("<eos>") >= 2  # past the first sentence end, as lm generate goes on
    assert [w for w in words if w != "<eos>"] == text.split()  # the command prints <eos> as a line break
    assert words == list(TextGenerator.load(lm_run, "cpu").continuation("w3 w4", 30, top_k=1))


def test_a_batch_of_prompts_is_left_padded_and_generates_what_each_does_alone(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    prompts = ["w3 w4 w5 w6", "w7", "w2 w9"]
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    assert batch["attention_mask"][1].tolist() == [0, 0, 0, 1, 1]  # <eos> w7, on the left
    together = model.generate(**batch, max_new_tokens=10, do_sample=False)[:, batch["input_ids"].size(1):]
    for prompt, words in zip(prompts, together):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        assert torch.equal(words, model.generate(ids, max_new_tokens=10, do_sample=False)[0, ids.size(1):])


def test_text_generation_pipeline_runs(folder):
    generate = pipeline("text-generation", model=str(folder), device="cpu")
    [result] = generate("w5 w6", max_new_tokens=8, do_sample=False)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("w5 w6", return_tensors="pt")["input_ids"]
    new = AutoModelForCausalLM.from_pretrained(folder).generate(ids, max_new_tokens=8, do_sample=False)[0, 3:]
    words = [w for w in tokenizer.convert_ids_to_tokens(new.tolist()) if w != "<eos>"]
    assert result["generated_text"] == " ".join(["w5", "w6", *words])  # the prompt, then a space before each word


def test_export_refuses_a_folder_that_holds_files(folder, lm_run, cli):
    code, _, err = cli("lm", "export", "--checkpoint", lm_run, "--hf", folder)
    assert code != 0 and "not an empty directory" in err and len(err.strip().splitlines()) == 1
    assert (folder / "model.safetensors").is_file()


def test_export_of_a_missing_run_is_a_one_line_error(cli, tmp_path):
    code, _, err = cli("lm", "export", "--checkpoint", tmp_path / "nothing", "--hf", tmp_path / "hf")
    assert code != 0 and len(err.strip().splitlines()) == 1


def test_perplexity_through_the_hf_folder_is_lm_evals(folder, lm_run, cli):
    """The valid split read through the tokenizer, in windows of 10 carried by the cache, has the loss
    of ``lm eval --batch-size 1 --bptt 10``."""
    import json

    code, out, err = cli("lm", "eval", "--checkpoint", lm_run, "--split", "valid", "--batch-size", 1, "--bptt", 10,
                         "--json")
    assert code == 0, err
    expected = json.loads(out)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    text = (lm_run.parent / "data" / "ptb.valid.txt").read_text().replace("\n", " <eos> ")
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    total, cache = 0.0, None
    with torch.no_grad():
        for start in range(0, ids.size(1) - 1, 10):
            window, targets = ids[:, start:start + 10], ids[:, start + 1:start + 11]
            out = model(window[:, :targets.size(1)], cache=cache)
            total += torch.nn.functional.cross_entropy(out.logits[0], targets[0], reduction="sum").item()
            cache = out.cache
    assert ids.size(1) - 1 == expected["tokens"]
    assert total / expected["tokens"] == pytest.approx(expected["loss"], abs=1e-5)


def test_without_transformers_export_says_what_to_install(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['transformers'] = None\n"
            "from quasirnn.cli.main import main\n"
            f"sys.exit(main(['lm', 'export', '--checkpoint', {str(tmp_path)!r}, '--hf', {str(tmp_path / 'hf')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    expected = "quasirnn: error: lm export needs transformers: pip install 'quasirnn[hf]'"
    assert proc.stderr.strip().splitlines() == [expected]
