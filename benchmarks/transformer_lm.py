"""A standard small Transformer language model, trained under the same budget as ``quasirnn lm train``.

The baseline of issue 33 (item 4): a nanoGPT-style decoder written here, so the QRNN language model
can be compared at equal training time with the model most readers would reach for instead.

- Model: token and learned position embeddings, dropout, ``--n-layer`` pre-LayerNorm blocks
  (LayerNorm → causal multi-head self-attention with a fused qkv projection and
  ``scaled_dot_product_attention(is_causal=True)`` → residual; LayerNorm → MLP 4× with GELU →
  residual), a final LayerNorm and an output head tied to the token embedding; GPT-2's
  initialisation (normal 0.02, the residual projections scaled by 1/sqrt(2·n_layer)).
- Training: random contiguous windows of ``--block-size`` + 1 tokens of the training stream
  (nanoGPT's ``get_batch``), AdamW (betas 0.9/0.95, weight decay on the 2-D weights only), gradient
  clipping, linear warm-up over ``--warmup-steps`` steps then cosine decay to ``--min-lr``. The
  cosine follows the fraction of the budget spent after the warm-up: of ``--time-budget`` minutes of
  training time (evaluation not counted; the number of steps is then not known in advance) or of
  ``--max-steps`` steps; training ends when either is spent.
- Evaluation: every token of the validation and test streams is scored exactly once by a strided
  sliding window (:func:`sliding_window_nll`): windows of ``--block-size`` tokens advance by
  ``--eval-stride`` (default half a block) and each scores only the targets the previous one did
  not, so every scored token sees at least block − stride tokens of context (fewer only at the
  start of the stream), as a recurrent model carries its state across the stream.

The default sizes (4 layers of width 128, 4 heads, context 128, batch 32: 2.09 M parameters with
PTB's vocabulary) suit a 20-minute run on one CPU thread: on the 2-core AMD EPYC, one thread, while
other training ran (load about 3, so a quiet core is faster), a float32 step took 2.3 s (1,760
tokens/s, about 2.3 epochs of PTB in 20 minutes) against 5.6 s for width 256 (5.75 M parameters,
1 epoch). At width 128 the 10,000-word output layer holds more of the arithmetic than the four blocks.

The corpus is read by ``quasirnn.data.load_corpus``, as ``quasirnn lm train --data DIR`` reads it:
on the Penn Treebank the same 10,000-word vocabulary with ``<eos>`` and the same train/valid/test
streams, so the perplexities compare.

Usage:
    python benchmarks/transformer_lm.py --data ../shared/data/ptb --time-budget 20 --threads 1 \\
        --json runs/transformer-20min.json
    python benchmarks/transformer_lm.py --data ../shared/data/ptb --max-steps 200 --n-layer 2 --n-embd 64
Logs a line to stderr about every ``--log-interval`` seconds (step, train loss, lr, tokens/s), then
prints a markdown table row (model, parameters, tokens/s, steps, epochs, valid and test perplexity)
and writes those numbers with the arguments to ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quasirnn.data import load_corpus
from quasirnn.training.device import resolve_device
from quasirnn.training.precision import autocast


@dataclass
class GPTConfig:
    """Sizes of :class:`TransformerLM`.

    Attributes:
        vocab_size: V, words of the vocabulary.
        block_size: the longest context (positions of the position embedding).
        n_layer: Transformer blocks.
        n_head: attention heads; ``n_embd`` must be a multiple of it.
        n_embd: model width (embedding, residual stream); the MLP is 4× wider.
        dropout: on the embeddings, the attention weights and each residual branch.
    """

    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.2


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions ≤ t; (B, T, C) → (B, T, C)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.n_embd % config.n_head:
            raise ValueError(f"n_embd ({config.n_embd}) must be a multiple of n_head ({config.n_head})")
        self.n_head, self.dropout = config.n_head, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))  # (B, H, T, C/H)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    """One pre-LayerNorm block: x + attn(ln(x)), then x + mlp(ln(x)); (B, T, C) → (B, T, C)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd), nn.Dropout(config.dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TransformerLM(nn.Module):
    """nanoGPT's decoder-only language model (see the module docstring), output head tied to the embedding.

    Args:
        config: the sizes (:class:`GPTConfig`).

    Forward: ``idx`` LongTensor (B, T) of token ids, T ≤ block_size → logits float (B, T, V); the
    logits at position t depend only on ``idx[:, :t + 1]``.

    Raises:
        ValueError: n_embd not a multiple of n_head, or (forward) T > block_size.

    Example::

        >>> model = TransformerLM(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=16))
        >>> model(torch.zeros(3, 5, dtype=torch.long)).shape
        torch.Size([3, 5, 50])
        >>> model.lm_head.weight is model.wte.weight
        True
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for block in self.blocks:  # GPT-2: the projections into the residual stream scaled by 1/sqrt(2 n_layer)
            for proj in (block.attn.c_proj, block.mlp[2]):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def num_parameters(model: nn.Module) -> int:
    """Parameters of ``model``, the tied embedding/head weight counted once."""
    return sum(p.numel() for p in model.parameters())


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """nanoGPT's AdamW: betas (0.9, 0.95), ``weight_decay`` on the parameters of 2 or more dims
    (matrices and embeddings), none on biases and LayerNorm gains."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def decay_fraction(done: float, start: float, total: float) -> float:
    """How far the cosine decay has gone: (done − start) / (total − start), clamped to [0, 1].

    ``done``, ``start`` and ``total`` are steps or seconds of training: ``start`` where the warm-up
    ended, ``total`` the budget. A budget no larger than ``start`` is spent (1.0).

    Example::

        >>> decay_fraction(60, 10, 110), decay_fraction(500, 10, 110), decay_fraction(5, 10, 110)
        (0.5, 1.0, 0.0)
    """
    if total <= start:
        return 1.0
    return min(1.0, max(0.0, (done - start) / (total - start)))


def learning_rate(step: int, fraction: float, *, lr: float, min_lr: float, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay (nanoGPT's ``get_lr``).

    Steps 0 … warmup_steps − 1 rise linearly to ``lr`` (step s gives lr·(s + 1)/warmup_steps); after
    them the rate is min_lr + ½(1 + cos(π·fraction))·(lr − min_lr), with ``fraction`` from
    :func:`decay_fraction` (clamped to [0, 1]): ``lr`` at 0, ``min_lr`` at 1 and after.

    Example::

        >>> [round(learning_rate(s, 0.0, lr=1.0, min_lr=0.1, warmup_steps=4), 2) for s in range(4)]
        [0.25, 0.5, 0.75, 1.0]
        >>> [round(learning_rate(9, f, lr=1.0, min_lr=0.1, warmup_steps=4), 3) for f in (0.0, 0.5, 1.0, 2.0)]
        [1.0, 0.55, 0.1, 0.1]
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    fraction = min(1.0, max(0.0, fraction))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * fraction)) * (lr - min_lr)


def random_windows(stream: Tensor, block_size: int, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """nanoGPT's ``get_batch``: ``batch_size`` windows of block_size + 1 contiguous tokens at random
    starts of ``stream`` (N,), as (inputs, targets), both LongTensors (B, block_size), targets shifted by one.

    Raises:
        ValueError: the stream holds no more than ``block_size`` tokens.
    """
    if stream.numel() <= block_size:
        raise ValueError(f"the training stream ({stream.numel()} tokens) must be longer than block_size {block_size}")
    starts = torch.randint(stream.numel() - block_size, (batch_size,), generator=generator)
    rows = starts[:, None] + torch.arange(block_size + 1)
    windows = stream[rows]
    return windows[:, :-1], windows[:, 1:]


def eval_windows(n_tokens: int, block_size: int, stride: int) -> list[tuple[int, int, int]]:
    """The windows that score each of the n_tokens − 1 targets of a stream exactly once.

    Window i has inputs ``stream[start:end]`` and targets ``stream[start + 1:end + 1]``; starts advance
    by ``stride`` and each window scores its last ``scored`` targets, those the windows before it did
    not (the first: all of its targets). Every window but the last holds ``block_size`` inputs.

    Returns:
        A list of (start, end, scored); the ``scored`` add up to n_tokens − 1.

    Raises:
        ValueError: stride not in 1 … block_size, or fewer than 2 tokens.

    Example::

        >>> eval_windows(10, 4, 2)
        [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 9, 1)]
        >>> eval_windows(10, 4, 4)
        [(0, 4, 4), (4, 8, 4), (8, 9, 1)]
    """
    if not 1 <= stride <= block_size:
        raise ValueError(f"eval stride must be in 1..block_size ({block_size}), got {stride}")
    if n_tokens < 2:
        raise ValueError(f"a stream to evaluate needs at least 2 tokens, got {n_tokens}")
    windows, start, scored_to = [], 0, 0
    while scored_to < n_tokens - 1:
        end = min(start + block_size, n_tokens - 1)
        windows.append((start, end, end - scored_to))
        scored_to, start = end, start + stride
    return windows


@torch.no_grad()
def sliding_window_nll(model: TransformerLM, stream: Tensor, stride: int, batch_size: int = 32,
                       precision: str = "32") -> tuple[float, int]:
    """Mean negative log-likelihood (nats per token) of every target of ``stream``, each scored once.

    The windows of :func:`eval_windows` (block_size = ``model.config.block_size``) run in batches of
    ``batch_size`` windows of equal length, the model in eval mode (no dropout); perplexity is
    ``exp`` of the mean. With ``stride`` = block_size this is the plain evaluation of consecutive
    non-overlapping blocks; a smaller stride gives each scored token at least block_size − stride tokens
    of context.

    Args:
        model: the language model.
        stream: LongTensor (N,) of token ids, on the model's device.
        stride: window advance, 1 ≤ stride ≤ block_size.
        batch_size: windows per forward pass.
        precision: "32" or "bf16" (``torch.autocast``); the NLL is summed in float32.

    Returns:
        (mean NLL, number of scored tokens = N − 1).

    Example::

        >>> model = TransformerLM(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16))
        >>> nll, count = sliding_window_nll(model, torch.randint(20, (50,)), stride=4)
        >>> count, 2.0 < math.exp(nll) < 40.0
        (49, True)
    """
    was_training = model.training
    model.eval()
    windows = eval_windows(stream.numel(), model.config.block_size, stride)
    total, count = torch.zeros((), dtype=torch.float64), 0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        for length in dict.fromkeys(end - start for start, end, _ in chunk):  # all but the last window share one
            group = [(s, n) for s, e, n in chunk if e - s == length]
            starts = torch.tensor([s for s, _ in group], device=stream.device)
            rows = starts[:, None] + torch.arange(length + 1, device=stream.device)
            windows_ids = stream[rows]  # (W, L + 1)
            with autocast(precision, stream.device):
                logits = model(windows_ids[:, :-1])
            nll = F.cross_entropy(logits.float().transpose(1, 2), windows_ids[:, 1:], reduction="none")  # (W, L)
            scored = torch.arange(length, device=stream.device) >= length - torch.tensor([n for _, n in group],
                                                                                       device=stream.device)[:, None]
            total += nll[scored].sum().double().cpu()
            count += int(scored.sum())
    model.train(was_training)
    return total.item() / count, count


@dataclass
class TrainResult:
    """What :func:`train` did: ``steps``, ``train_seconds`` (training only), ``tokens`` seen, and
    ``loss_curve``, the (step, mean train loss since the previous entry) of each log line."""

    steps: int
    train_seconds: float
    tokens: int
    loss_curve: list[tuple[int, float]]


def train(model: TransformerLM, stream: Tensor, args: argparse.Namespace, device: torch.device) -> TrainResult:
    """Trains ``model`` on random windows of the training ``stream`` (N,) until ``args.max_steps``
    steps or ``args.time_budget`` minutes of training time are spent (see the module docstring)."""
    block, batch = model.config.block_size, args.batch_size
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    budget_s = args.time_budget * 60.0 if args.time_budget is not None else None
    step, seconds, warmup_end_s = 0, 0.0, 0.0
    curve: list[tuple[int, float]] = []
    losses: list[float] = []
    last_log = time.perf_counter()
    model.train()
    done = False
    while not done:
        if step == args.warmup_steps:
            warmup_end_s = seconds
        fractions = []
        if args.max_steps is not None:
            fractions.append(decay_fraction(step, args.warmup_steps, args.max_steps))
        if budget_s is not None:
            fractions.append(decay_fraction(seconds, warmup_end_s, budget_s) if step >= args.warmup_steps else 0.0)
        lr = learning_rate(step, max(fractions), lr=args.lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps)
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = (t.to(device) for t in random_windows(stream, block, batch, generator))
        with autocast(args.precision, device):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        seconds += time.perf_counter() - t0
        step += 1
        done = (args.max_steps is not None and step >= args.max_steps) or (budget_s is not None and seconds >= budget_s)
        if done or time.perf_counter() - last_log >= args.log_interval:
            curve.append((step, sum(losses) / len(losses)))
            print(f"step {step} | train loss {curve[-1][1]:.3f} | lr {lr:.2e} | "
                  f"{step * batch * block / seconds:,.0f} tokens/s | {seconds / 60:.1f} min", file=sys.stderr, flush=True)
            losses, last_log = [], time.perf_counter()
    return TrainResult(steps=step, train_seconds=seconds, tokens=step * batch * block, loss_curve=curve)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line (see the module docstring); exits with a one-line error on bad values."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="corpus directory with {ptb.,}{train,valid,test}.txt (as lm train's --data)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--precision", choices=("32", "bf16"), default="32", help="bf16: torch.autocast (default: 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=128, help="context length in tokens")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--min-lr", type=float, default=None, help="end of the cosine (default: lr / 10)")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: none)")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES", help="training time (evaluation excluded)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--eval-stride", type=int, default=None, help="sliding-window advance (default: block_size // 2)")
    p.add_argument("--eval-batch-size", type=int, default=None, help="windows per forward pass (default: --batch-size)")
    p.add_argument("--log-interval", type=float, default=60.0, help="seconds between log lines (0: every step)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the results and arguments here")
    args = p.parse_args(argv)
    if args.time_budget is None and args.max_steps is None:
        p.error("give a budget: --time-budget MINUTES and/or --max-steps N")
    if args.time_budget is not None and not args.time_budget > 0:
        p.error(f"--time-budget must be > 0 minutes, got {args.time_budget}")
    for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.n_embd % args.n_head:
        p.error(f"--n-embd ({args.n_embd}) must be a multiple of --n-head ({args.n_head})")
    args.min_lr = args.lr / 10 if args.min_lr is None else args.min_lr
    args.eval_stride = max(1, args.block_size // 2) if args.eval_stride is None else args.eval_stride
    if not 1 <= args.eval_stride <= args.block_size:
        p.error(f"--eval-stride must be in 1..--block-size ({args.block_size}), got {args.eval_stride}")
    args.eval_batch_size = args.eval_batch_size or args.batch_size
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    corpus = load_corpus(args.data)
    config = GPTConfig(vocab_size=len(corpus.vocab), block_size=args.block_size, n_layer=args.n_layer,
                       n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout)
    model = TransformerLM(config).to(device)
    params = num_parameters(model)
    print(f"torch {torch.__version__}, {device} ({torch.get_num_threads()} threads), precision {args.precision}; "
          f"{params / 1e6:.2f} M parameters, {corpus.train.numel():,} training tokens, V = {config.vocab_size:,}",
          file=sys.stderr, flush=True)
    result = train(model, corpus.train, args, device)
    ppl = {}
    for split in ("valid", "test"):
        nll, count = sliding_window_nll(model, corpus.split(split).to(device), args.eval_stride, args.eval_batch_size,
                                        args.precision)
        ppl[split] = {"nll": nll, "ppl": math.exp(nll), "tokens": count}
    name = f"transformer {config.n_layer}×{config.n_embd}, {config.n_head} heads, ctx {config.block_size}"
    tokens_per_s = result.tokens / result.train_seconds if result.train_seconds else math.nan
    epochs = result.tokens / corpus.train.numel()
    print("| model | parameters | tokens/s | steps | epochs (tokens seen / train tokens) | valid ppl | test ppl |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {name} | {params / 1e6:.2f} M | {tokens_per_s:,.0f} | {result.steps:,} | {epochs:.2f} | "
          f"{ppl['valid']['ppl']:.2f} | {ppl['test']['ppl']:.2f} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {"model": name, "config": asdict(config), "parameters": params, "tokens_per_s": tokens_per_s,
                  "steps": result.steps, "train_seconds": result.train_seconds, "tokens_seen": result.tokens,
                  "train_tokens": corpus.train.numel(), "epochs": epochs, "valid": ppl["valid"], "test": ppl["test"],
                  "loss_curve": result.loss_curve, "torch": torch.__version__, "num_threads": torch.get_num_threads(),
                  "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
