"""benchmarks/transformer_lm.py, the Transformer baseline of issue 33: the model is causal and tied,
the sliding-window evaluation scores every token once, the learning-rate schedule, and a tiny run
of the script end to end (loss falls, the JSON holds finite perplexities)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "transformer_lm.py"


def _model(tfm, block_size=16, vocab_size=30):
    torch.manual_seed(0)
    config = tfm.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return tfm.TransformerLM(config).eval()


def test_logits_before_a_changed_token_do_not_change(tfm):
    model = _model(tfm)
    idx = torch.randint(30, (2, 16))
    changed = idx.clone()
    t = 9
    changed[:, t] = (idx[:, t] + 1) % 30
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=1e-6)
    assert (a[:, t:] - b[:, t:]).abs().amax(-1).min() > 1e-4  # every later position does see it


def test_output_head_is_the_token_embedding(tfm):
    model = _model(tfm)
    assert model.lm_head.weight is model.wte.weight
    assert tfm.num_parameters(model) == sum(p.numel() for p in set(model.parameters()))
    decayed, not_decayed = tfm.make_optimizer(model, 1e-3, 0.1).param_groups
    assert decayed["weight_decay"] == 0.1 and all(p.dim() == 2 for p in decayed["params"])
    assert not_decayed["weight_decay"] == 0.0 and all(p.dim() == 1 for p in not_decayed["params"])


def _plain_nll(model, stream, block):
    """Consecutive non-overlapping blocks, one at a time."""
    total, count = 0.0, 0
    for start in range(0, stream.numel() - 1, block):
        chunk = stream[start : start + block + 1]
        with torch.no_grad():
            logits = model(chunk[None, :-1])
        total += F.cross_entropy(logits[0], chunk[1:], reduction="sum").item()
        count += chunk.numel() - 1
    return total / count, count


@pytest.mark.parametrize("n_tokens", [2, 16, 17, 100, 101])
def test_every_token_is_scored_once(tfm, n_tokens):
    for stride in (1, 5, 8, 16):
        windows = tfm.eval_windows(n_tokens, 16, stride)
        targets = [i for start, end, scored in windows for i in range(end - scored + 1, end + 1)]
        assert targets == list(range(1, n_tokens)), (n_tokens, stride)
        assert all(end - start == 16 for start, end, _ in windows[:-1])
        assert all(scored <= stride for _, _, scored in windows[1:])  # at least block - stride tokens of context


def test_sliding_window_with_stride_block_is_the_plain_evaluation(tfm):
    model = _model(tfm)
    stream = torch.randint(30, (203,))
    plain, plain_count = _plain_nll(model, stream, 16)
    nll, count = tfm.sliding_window_nll(model, stream, stride=16, batch_size=5)
    assert count == plain_count == stream.numel() - 1
    assert nll == pytest.approx(plain, rel=1e-6)
    strided, strided_count = tfm.sliding_window_nll(model, stream, stride=4, batch_size=7)
    assert strided_count == stream.numel() - 1
    assert math.isfinite(strided) and abs(strided - plain) > 1e-5
    with pytest.raises(ValueError, match="stride"):
        tfm.sliding_window_nll(model, stream, stride=17)


def test_longer_context_helps_on_a_stream_only_context_predicts(tfm):
    # a period-12 stream of 12 distinct tokens: with no context a model can't know the next token
    torch.manual_seed(0)
    model = tfm.TransformerLM(tfm.GPTConfig(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0))
    stream = torch.arange(12).repeat(40)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        inputs, targets = tfm.random_windows(stream, 16, 16, gen)
        loss = F.cross_entropy(model(inputs).view(-1, 12), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    full, _ = tfm.sliding_window_nll(model, stream, stride=16)
    strided, _ = tfm.sliding_window_nll(model, stream, stride=2)
    assert strided < full  # the strided windows only score tokens with >= 14 tokens of context


def test_learning_rate_warms_up_linearly_and_ends_at_min_lr(tfm):
    lr = lambda step, frac: tfm.learning_rate(step, frac, lr=1e-3, min_lr=1e-4, warmup_steps=10)
    warm = [lr(s, 0.0) for s in range(10)]
    assert warm == pytest.approx([1e-4 * (s + 1) for s in range(10)])
    assert lr(10, 0.0) == pytest.approx(1e-3)
    assert lr(500, 0.5) == pytest.approx(5.5e-4)
    assert lr(500, 1.0) == pytest.approx(1e-4) and lr(500, 3.0) == pytest.approx(1e-4)
    decay = [lr(10, f / 10) for f in range(11)]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    # the fraction of the budget spent after the warm-up, clamped to [0, 1]
    assert tfm.decay_fraction(1200.0, 0.0, 1200.0) == 1.0 and tfm.decay_fraction(1500.0, 30.0, 1200.0) == 1.0
    assert tfm.decay_fraction(615.0, 30.0, 1200.0) == pytest.approx(0.5)
    assert tfm.decay_fraction(10.0, 30.0, 1200.0) == 0.0


def _corpus(tmp_path: Path, line: str) -> Path:
    for split, lines in (("train", 400), ("valid", 20), ("test", 20)):
        (tmp_path / f"{split}.txt").write_text((line + "\n") * lines)
    return tmp_path


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), timeout=120)


TINY = ("--threads", "1", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "8")


def test_script_trains_and_writes_the_json(tmp_path):
    line = "the cat sat on the mat and the dog ran to the park"
    out = tmp_path / "run.json"
    proc = _script("--data", str(_corpus(tmp_path, line)), "--max-steps", "40", *TINY, "--lr", "1e-2",
                   "--warmup-steps", "5", "--dropout", "0.0", "--log-interval", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "step 40 | train loss" in proc.stderr
    rows = [r for r in proc.stdout.splitlines() if r.startswith("| transformer 1×32")]
    assert len(rows) == 1 and rows[0].count("|") == 8
    record = json.loads(out.read_text())
    assert record["steps"] == 40 and record["tokens_seen"] == 40 * 8 * 16
    assert record["epochs"] == pytest.approx(40 * 8 * 16 / record["train_tokens"])
    assert record["valid"]["tokens"] == 20 * (len(line.split()) + 1) - 1 and record["args"]["eval_stride"] == 8
    for split in ("valid", "test"):
        assert math.isfinite(record[split]["ppl"]) and record[split]["ppl"] < 2.0  # the line is learnt
    curve = [loss for _, loss in record["loss_curve"]]
    assert len(curve) == 40 and curve[-1] < 0.3 * curve[0]


def test_script_stops_at_the_time_budget(tmp_path):
    out = tmp_path / "run.json"
    proc = _script("--data", str(_corpus(tmp_path, "a b c d")), "--time-budget", "0.01", *TINY,
                   "--warmup-steps", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["steps"] > 2 and 0.6 <= record["train_seconds"] < 3.0
    assert proc.stderr.splitlines()[-1].startswith(f"step {record['steps']} | train loss")  # the last step is logged


BAD_ARGUMENTS = [
    ((), "--time-budget MINUTES and/or --max-steps N"),
    (("--max-steps", "1", "--eval-stride", "200"), "--eval-stride must be in 1..--block-size (128)"),
    (("--max-steps", "1", "--n-embd", "30"), "--n-embd (30) must be a multiple of --n-head (4)"),
    (("--max-steps", "0"), "--max-steps must be >= 1, got 0"),
    (("--time-budget", "0"), "--time-budget must be > 0 minutes, got 0.0"),
]


@pytest.mark.parametrize("args, error", BAD_ARGUMENTS)
def test_bad_arguments_are_one_line_errors(tfm, capsys, args, error):
    with pytest.raises(SystemExit) as exit_:
        tfm.parse_args(["--data", "x", *args])
    assert exit_.value.code == 2 and error in capsys.readouterr().err.splitlines()[-1]
