"""Communication overhead of data-parallel training: ``lm train`` on 2 ranks against 2 independent runs.

Both setups use the same per-rank work: one thread per process and a batch of ``--batch-size``
columns per process.

- **independent**: two single-process ``quasirnn lm train --batch-size B --threads 1`` runs at
  the same time; their tokens/s add up (no communication at all).
- **ddp**: ``torchrun --nproc_per_node 2 … lm train --batch-size 2B --threads 1``: the global
  batch of 2B columns is split B + B between the ranks (gloo on loopback on CPU), the gradients are
  averaged every step.

Throughput is read from each run's ``log.jsonl``: tokens over the training time of the steps
after ``--warmup``. The ratio ddp / independent is the share of the machine's throughput that
survives the communication (issue 7 asks ≥ 0.85 on a 2-core CPU). Validation and test are cut to
their first 100 lines so that evaluation costs little; the training split is the real one.

Usage (takes the whole machine; run it when nothing else does):
    python benchmarks/ddp_speed.py --data ../shared/data/ptb
    python benchmarks/ddp_speed.py --data ../shared/data/ptb --steps 100 --repeat 2 --device cuda   # GPUs
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import quasirnn

SRC = Path(quasirnn.__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data_dir(source: Path, target: Path, train_lines: int | None) -> Path:
    """``source``'s PTB files in ``target``: the training split (or its first lines), 100 lines of the others."""
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        lines = train_lines if split == "train" else 100
        with open(source / f"ptb.{split}.txt", encoding="utf-8") as f:
            text = f.read() if lines is None else "".join(line for _, line in zip(range(lines), f))
        (target / f"ptb.{split}.txt").write_text(text, encoding="utf-8")
    return target


def _rate(out: Path, warmup: int) -> float:
    """Training tokens/s of a run after its first ``warmup`` steps, from its log.jsonl."""
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["split"] == "train"]
    if len(steps) <= warmup:
        raise SystemExit(f"{out}: {len(steps)} steps logged, need more than --warmup {warmup}")
    base = steps[warmup - 1]["train_time_s"] if warmup else 0.0
    timed = steps[warmup:]
    return sum(r["tokens"] for r in timed) / (timed[-1]["train_time_s"] - base)


def _train_args(args: argparse.Namespace, data: Path, batch: int, out: Path) -> list[str]:
    return ["lm", "train", "--data", str(data), "--batch-size", str(batch), "--max-steps", str(args.steps),
            "--threads", "1", "--device", args.device, "--cell", args.cell, "--emb-size", str(args.emb_size),
            "--hidden-size", str(args.hidden_size), "--num-layers", str(args.num_layers), "--bptt", str(args.bptt),
            "--eval-batch-size", "2", "--quiet", "--out", str(out)]


def _check(procs: list[subprocess.Popen], what: str) -> None:
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{what} failed with status {proc.returncode}:\n{err[-3000:]}")


def _independent(args: argparse.Namespace, data: Path, root: Path) -> float:
    outs = [root / f"independent-{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "quasirnn.cli.main", *_train_args(args, data, args.batch_size, o)],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for o in outs]
    _check(procs, "an independent run")
    return sum(_rate(o, args.warmup) for o in outs)


def _ddp(args: argparse.Namespace, data: Path, root: Path) -> float:
    out = root / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2", "--master_addr",
           "127.0.0.1", "--master_port", str(_free_port()), "-m", "quasirnn.cli.main",
           *_train_args(args, data, 2 * args.batch_size, out)]
    _check([subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)],
           "the torchrun run")
    return _rate(out, args.warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="directory with ptb.{train,valid,test}.txt")
    p.add_argument("--train-lines", type=int, default=None, help="use only the first lines of the training split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16, help="columns per process (ddp: global batch of twice this)")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    p.add_argument("--warmup", type=int, default=10, help="first steps left out of the rate")
    p.add_argument("--repeat", type=int, default=1, help="measure both setups this many times, alternating")
    p.add_argument("--cell", default="qrnn")
    p.add_argument("--emb-size", type=int, default=200)
    p.add_argument("--hidden-size", type=int, default=600)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--bptt", type=int, default=70)
    args = p.parse_args()
    if args.warmup >= args.steps:
        p.error("--warmup must be smaller than --steps")

    rows = []
    with tempfile.TemporaryDirectory(prefix="ddp_speed.") as tmp:
        data = _data_dir(args.data, Path(tmp) / "data", args.train_lines)
        for i in range(args.repeat):
            root = Path(tmp) / f"round-{i}"
            independent = _independent(args, data, root)
            ddp = _ddp(args, data, root)
            rows.append((i + 1, independent, ddp))

    print(f"lm train, {args.cell} {args.num_layers}×{args.hidden_size} (E {args.emb_size}), bptt {args.bptt}, "
          f"{args.batch_size} columns per process, 1 thread per process, device {args.device}, "
          f"{args.steps} steps ({args.warmup} warm-up)\n")
    print("| round | 2 independent runs, tokens/s (sum) | torchrun 2 ranks, tokens/s | ddp / independent |")
    print("|---|---|---|---|")
    for i, independent, ddp in rows:
        print(f"| {i} | {independent:,.0f} | {ddp:,.0f} | {ddp / independent:.3f} |")
    if len(rows) > 1:
        independent = sum(r[1] for r in rows) / len(rows)
        ddp = sum(r[2] for r in rows) / len(rows)
        print(f"| mean | {independent:,.0f} | {ddp:,.0f} | {ddp / independent:.3f} |")


if __name__ == "__main__":
    main()
