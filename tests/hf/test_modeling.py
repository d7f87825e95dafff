"""quasirnn.hf: the transformers models wrap the project's LanguageModel exactly (logits, save/load,
generate with the recurrent state as the cache, beam search), on tiny random models, CPU."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")

from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM,  # noqa: E402
                          AutoModelForSequenceClassification)

import quasirnn.hf as qhf  # noqa: E402

V = 12
CASES = {
    "qrnn-full": dict(cell="qrnn", window=[2, 1]),
    "qrnn-window3-untied": dict(cell="qrnn", window=3, tie_word_embeddings=False),
    "sru-adaptive": dict(cell="sru", softmax="adaptive", cutoffs=[4, 8]),
    "lstm-adaptive-untied": dict(cell="lstm", softmax="adaptive", cutoffs=[5], tie_word_embeddings=False),
}


def tiny(case: str, seed: int = 0) -> qhf.QRNNForCausalLM:
    torch.manual_seed(seed)
    config = qhf.QRNNConfig(vocab_size=V, emb_size=6, hidden_size=10, num_layers=2, backend="torch", **CASES[case])
    model = qhf.QRNNForCausalLM(config).eval()
    with torch.no_grad():  # larger weights than the init, so that the words depend on the context
        for p in model.parameters():
            p.mul_(8)
    return model


@pytest.mark.parametrize("case", CASES)
def test_logits_are_the_language_models(case):
    model = tiny(case)
    ids = torch.randint(0, V, (3, 9))
    out = model(ids)
    ref, _ = model.lm(ids.t())
    assert out.logits.shape == (3, 9, V)
    torch.testing.assert_close(out.logits, ref.transpose(0, 1).float(), atol=1e-5, rtol=0)
    # reading the ids in two pieces through the cache gives the same scores
    first = model(ids[:, :4])
    second = model(ids[:, 4:], cache=first.cache)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), out.logits, atol=1e-5, rtol=0)
    assert second.cache.get_seq_length() == 9


def test_loss_is_the_shifted_mean_nll():
    model = tiny("qrnn-full")
    ids = torch.randint(0, V, (2, 7))
    out = model(ids, labels=ids)
    expected, _ = model.lm(ids.t()[:-1], targets=ids.t()[1:])
    torch.testing.assert_close(out.loss, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_save_pretrained_round_trip_is_exact(case, tmp_path):
    model = tiny(case)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "qrnn"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is qhf.QRNNForCausalLM and not loaded.training
    assert loaded.lm.tied == model.lm.tied
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), qhf.QRNNConfig)
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is qhf.QRNNModel
    ids = torch.randint(0, V, (2, 5))
    raw, _, _ = model.lm.features(ids.t())
    torch.testing.assert_close(base(ids).last_hidden_state, raw.transpose(0, 1), atol=0, rtol=0)


def test_bfloat16_loads_with_dtype(tmp_path):
    tiny("qrnn-full").save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16, device_map="cpu")
    assert model.lm.encoder.weight.dtype == torch.bfloat16
    assert model(torch.tensor([[1, 2, 3]])).logits.dtype == torch.float32


@pytest.mark.parametrize("case", CASES)
def test_greedy_generate_is_the_projects_greedy(case):
    model = tiny(case)
    prompt = [3, 1, 4, 1, 5]
    out = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)
    ours = list(model.lm.generate(prompt, 12, top_k=1))
    assert out[0, len(prompt):].tolist() == ours
    assert len(set(ours)) > 1  # the test would not see a state that is not carried


def test_generate_reads_one_token_per_step():
    """After the prompt, each forward call of generate reads one token (the state is the cache)."""
    model = tiny("qrnn-full")
    lengths = []
    model.lm.rnns[0].register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[0]))  # x (T, B, E)
    model.generate(torch.tensor([[1, 2, 3, 4]]), max_new_tokens=5, do_sample=False)
    assert lengths == [4, 1, 1, 1, 1]


def test_sampling_runs_and_follows_the_seed():
    model = tiny("sru-adaptive")
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append(model.generate(ids, max_new_tokens=6, do_sample=True, top_k=5, top_p=0.9, temperature=0.8))
    assert draws[0].shape == (2, 9) and torch.equal(draws[0], draws[1])


@pytest.mark.parametrize("case", ["qrnn-full", "lstm-adaptive-untied"])
def test_beam_search_is_exhaustive_with_enough_beams(case):
    """With V^N beams, beam search keeps every continuation: it must return the most probable
    N-token continuation, found here by scoring all V^N of them with one forward pass each."""
    model = tiny(case)
    prompt, n = [2, 7, 1], 3
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, num_beams=V ** (n - 1) * 2, do_sample=False,
                         length_penalty=0.0, early_stopping=True)
    candidates = torch.tensor(list(itertools.product(range(V), repeat=n)))
    ids = torch.cat([torch.tensor(prompt).expand(len(candidates), -1), candidates], 1)
    with torch.no_grad():
        logp = model(ids).logits.log_softmax(-1)[:, len(prompt) - 1:-1]
    scores = logp.gather(-1, candidates.unsqueeze(-1)).squeeze(-1).sum(-1)
    best = candidates[scores.argmax()].tolist()
    assert out[0, len(prompt):].tolist() == best


def test_beam_search_reorders_the_cache():
    """Beam search with the cache gives what it gives without one (every step re-reads the prefix)."""
    model = tiny("qrnn-window3-untied")
    ids = torch.tensor([[5, 3, 9]])
    kwargs = dict(max_new_tokens=8, num_beams=4, num_return_sequences=4, do_sample=False)
    with_cache = model.generate(ids, **kwargs)
    without = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(with_cache, without)


@pytest.mark.parametrize("case", CASES)
def test_left_padded_prompts_read_and_generate_as_each_alone(case):
    model = tiny(case)
    prompts = [[3, 4, 5, 6, 7], [8, 9], [1, 2, 3]]
    ids = torch.tensor([[0] * (5 - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (5 - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        for row, prompt in enumerate(prompts):
            alone = model(torch.tensor([prompt])).logits[0]
            torch.testing.assert_close(out.logits[row, 5 - len(prompt):], alone, atol=1e-5, rtol=1e-5)
            assert out.logits[row, 5 - len(prompt):].isfinite().all()
    assert out.cache.get_seq_length() == 5 and out.cache.batch_size == 3
    kwargs = dict(max_new_tokens=6, do_sample=False)
    together = model.generate(ids, attention_mask=mask, **kwargs)[:, 5:]
    alone = [model.generate(torch.tensor([p]), **kwargs)[0, len(p):] for p in prompts]
    assert torch.equal(together, torch.stack(alone))
    assert len({tuple(words.tolist()) for words in alone}) > 1  # the prompts lead to different words


def test_padding_other_than_on_the_left_of_a_fresh_prompt_is_a_one_line_error():
    model = tiny("qrnn-full")
    ids = torch.tensor([[1, 2, 0], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"left padding only \(tokenizer.padding_side = 'left'\)"):
        model(ids, attention_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]))
    with pytest.raises(ValueError, match=r"left padding only"):
        model(ids, attention_mask=torch.tensor([[0, 1, 0], [1, 1, 1]]))
    with pytest.raises(ValueError, match=r"row 1 of attention_mask is all padding"):
        model(ids, attention_mask=torch.tensor([[0, 1, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids \(2, 3\), got \(2, 2\)"):
        model(ids, attention_mask=torch.tensor([[0, 1], [1, 1]]))
    cache = model(ids).cache
    with pytest.raises(ValueError, match=r"with a cache, pass no attention_mask"):
        model(ids, attention_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]), cache=cache)


def test_config_of_a_later_version_is_a_one_line_error(tmp_path):
    tiny("qrnn-full").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "quasirnn_format": 99}))
    with pytest.raises(ValueError, match="later quasirnn.*upgrade quasirnn") as info:
        AutoModelForCausalLM.from_pretrained(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_weights_are_a_one_line_error(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny("qrnn-full").save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["lm.rnns.1.layers.0.linear.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lack 1 of the model's tensors .*lm.rnns.1") as info:
        AutoModelForCausalLM.from_pretrained(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(OSError):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_import_quasirnn_does_not_import_transformers():
    code = "import sys, quasirnn, quasirnn.models; print('transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_torch_compile_gives_the_same_logits():
    model = tiny("qrnn-full")
    ids = torch.randint(0, V, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(ids).logits, model(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["qrnn", "sru", "lstm"])
def test_sequence_classifier_is_the_text_classifier_and_ignores_padding(cell, tmp_path):
    torch.manual_seed(0)
    config = qhf.QRNNConfig(vocab_size=V, emb_size=6, hidden_size=5, num_layers=2, cell=cell, backend="torch",
                            num_labels=3, pooling="last" if cell == "sru" else "mean")
    model = qhf.QRNNForSequenceClassification(config).eval()
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    logits = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(logits, model.classifier(ids.t(), torch.tensor([4, 2])), atol=1e-6, rtol=0)
    torch.testing.assert_close(logits[1:], model(ids[1:, :2]).logits, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert torch.equal(loaded(ids, attention_mask=mask).logits, logits)
