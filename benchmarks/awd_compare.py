"""Our AWD-QRNN recipe against salesforce/awd-lstm-lm's own code, on a reduced Penn Treebank.

Runs awd-lstm-lm's ``main.py`` (model QRNN, its layers from salesforce/pytorch-qrnn, whose CPU
recurrence is a Python loop) and ``quasirnn lm train`` with the same hyper-parameters on the same
reduced corpus, and prints validation perplexity epoch by epoch side by side with the seconds of
each epoch (awd: its printed epoch time, training and validation; ours: the wall time between two
validation records of OUT/log.jsonl, the same span). Then the neural cache: awd's ``pointer.py``
on awd's best model, and our cache (:func:`quasirnn.experiments.language_model.cache_pointer.
evaluate_with_cache`, what ``lm eval --cache-pointer`` runs) on the same model converted with
:func:`quasirnn.convert.from_torchqrnn`, on the reduced validation split with the same window, θ
and λ; also ``lm eval --cache-pointer`` on our own trained run.

The checkouts are only read: they are copied to a temporary directory, where the fixes in
``benchmarks/awd_patches/`` (needed on today's PyTorch and without CUDA) are applied; the script
prints which. The two runs start from different random initialisations and dropout masks, so
their agreement epoch by epoch is statistical.

Usage::

    python benchmarks/awd_compare.py --awd PATH/awd-lstm-lm --qrnn PATH/pytorch-qrnn \\
        [--data DIR_WITH_PTB] [--train-lines 3000] [--epochs 4] [--optimizer sgd adam] [--seed 1111] \\
        [--no-pointer] [--workdir DIR]
    python benchmarks/awd_compare.py --awd ... --qrnn ... --layer-speed   # one layer of each, timed

awd's validation perplexity is printed as it prints it and, beside it, on our convention (its
``evaluate`` divides by one row more than it predicts). Everything runs on one thread
(``OMP_NUM_THREADS=1``); the patches need the ``patch`` program.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
PATCHES = HERE / "awd_patches"
REPO = HERE.parent

#: what each patch fixes, printed when applied (the patch files hold the diffs).
FIXES = {
    "pytorch-qrnn.patch": [
        "torchqrnn/forget_mult.py: the cupy/pynvrtc imports of the CUDA kernel made optional "
        "(CPU-only machine; CPUForgetMult is used)",
    ],
    "awd-lstm-lm.patch": [
        "weight_drop.py: in eval mode F.dropout returns the raw Parameter itself, which setattr registered "
        "as a new parameter 'weight', so the next training forward failed (TypeError: cannot assign "
        "'torch.FloatTensor' as parameter 'weight'); a copy is set instead",
        "main.py: torch.load(..., weights_only=False) for its pickled corpus and [model, criterion, optimizer] "
        "(PyTorch >= 2.6 defaults to weights_only=True)",
        "pointer.py: model.decoder applied to the model's output (since awd-lstm-lm c8cea02 the model returns "
        "the last layer's output, not logits)",
        "pointer.py: loads the [model, criterion, optimizer] list main.py saves and takes the model",
        "pointer.py: one_hot follows --cuda (was always .cuda()); .item() for 0-d tensors "
        "(t.data[0], loss.data[0]); softmax with dim=-1; torch.load weights_only=False",
    ],
}

SPLITS = ("train", "valid", "test")


# ----------------------------------------------------------------------------- the reduced corpus

def reduce_corpus(src: Path, dst: Path, lines: dict[str, int]) -> dict[str, dict[str, int]]:
    """Write the first ``lines[split]`` lines of ``src/ptb.{split}.txt`` to ``dst/{split}.txt``.

    Words of valid/test that the reduced train split lacks become ``<unk>``, so that both programs
    have the same vocabulary (awd-lstm-lm's dictionary holds the words of all three splits; ours
    those of train). Returns per split: lines, tokens (words + one ``<eos>`` a line), and ``vocab``
    (the train split's word types incl. ``<eos>``).
    """
    dst.mkdir(parents=True, exist_ok=True)
    stats: dict[str, dict[str, int]] = {}
    vocab: set[str] = {"<eos>"}
    for split in SPLITS:
        path = src / f"ptb.{split}.txt"
        if not path.is_file():
            path = src / f"{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"expected {src}/ptb.{split}.txt or {src}/{split}.txt")
        kept, tokens, replaced = [], 0, 0
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if n >= lines[split]:
                    break
                words = line.split()
                if split == "train":
                    vocab.update(words)
                else:
                    replaced += sum(w not in vocab for w in words)
                    words = [w if w in vocab else "<unk>" for w in words]
                kept.append(" " + " ".join(words) + " \n")  # PTB's own layout: leading and trailing space
                tokens += len(words) + 1
        (dst / f"{split}.txt").write_text("".join(kept), encoding="utf-8")
        stats[split] = {"lines": len(kept), "tokens": tokens, "unk_replaced": replaced}
    stats["train"]["vocab"] = len(vocab)
    return stats


# ----------------------------------------------------------------------------- the option mapping

#: the shared configuration: reduced sizes, lower dropout than the recipe (few epochs).
DEFAULTS = dict(emsize=200, nhid=400, nlayers=2, batch_size=20, bptt=70, clip=0.25, dropout=0.1, dropouth=0.1,
                dropouti=0.1, dropoute=0.0, wdrop=0.1, alpha=2.0, beta=1.0, wdecay=1.2e-6, seed=1111, nonmono=1)
LR = {"sgd": 30.0, "adam": 0.002}


def awd_args(cfg: dict, optimizer: str, lr: float, epochs: int, data: Path, save: Path) -> list[str]:
    """awd-lstm-lm ``main.py`` arguments for ``cfg`` (``--cuda`` there turns CUDA off)."""
    return ["--model", "QRNN", "--data", str(data), "--save", str(save), "--cuda", "--epochs", str(epochs),
            "--optimizer", optimizer, "--lr", str(lr), "--emsize", str(cfg["emsize"]), "--nhid", str(cfg["nhid"]),
            "--nlayers", str(cfg["nlayers"]), "--batch_size", str(cfg["batch_size"]), "--bptt", str(cfg["bptt"]),
            "--clip", str(cfg["clip"]), "--dropout", str(cfg["dropout"]), "--dropouth", str(cfg["dropouth"]),
            "--dropouti", str(cfg["dropouti"]), "--dropoute", str(cfg["dropoute"]), "--wdrop", str(cfg["wdrop"]),
            "--alpha", str(cfg["alpha"]), "--beta", str(cfg["beta"]), "--wdecay", str(cfg["wdecay"]),
            "--seed", str(cfg["seed"]), "--nonmono", str(cfg["nonmono"]), "--log-interval", "1000000"]


def our_args(cfg: dict, optimizer: str, lr: float, epochs: int, data: Path, out: Path) -> list[str]:
    """``quasirnn lm train`` arguments equivalent to :func:`awd_args`: awd's variable BPTT, its
    evaluation batch sizes (10, test 1), its best model tested, no plateau decay, full softmax,
    float32, no time budget."""
    return ["lm", "train", "--data", str(data), "--out", str(out), "--overwrite", "--cell", "qrnn",
            "--epochs", str(epochs), "--optimizer", optimizer, "--lr", str(lr), "--emb-size", str(cfg["emsize"]),
            "--hidden-size", str(cfg["nhid"]), "--num-layers", str(cfg["nlayers"]),
            "--batch-size", str(cfg["batch_size"]), "--bptt", str(cfg["bptt"]), "--variable-bptt",
            "--clip", str(cfg["clip"]), "--dropout", str(cfg["dropout"]), "--dropouth", str(cfg["dropouth"]),
            "--dropouti", str(cfg["dropouti"]), "--dropoute", str(cfg["dropoute"]), "--wdrop", str(cfg["wdrop"]),
            "--alpha", str(cfg["alpha"]), "--beta", str(cfg["beta"]), "--wdecay", str(cfg["wdecay"]),
            "--seed", str(cfg["seed"]), "--nonmono", str(cfg["nonmono"]), "--lr-decay", "1",
            "--eval-batch-size", "10", "--test-batch-size", "1", "--keep-best", "--softmax", "full",
            "--tie-weights", "--precision", "32", "--time-budget", "0", "--threads", "1", "--no-progress"]


AWD_EPOCH = re.compile(r"\| end of epoch\s+(\d+) \| time:\s*([\d.]+)s \| valid loss\s+([\d.]+) \| valid ppl\s+([\d.]+)")


def parse_awd(text: str) -> dict:
    """Epochs (epoch, seconds, valid ppl), the ASGD switch epoch and the test ppl of a main.py log."""
    epochs = [(int(m[1]), float(m[2]), float(m[4])) for m in AWD_EPOCH.finditer(text)]  # its printed ppl
    switch = None
    last = 0
    for line in text.splitlines():
        m = AWD_EPOCH.search(line)
        if m:
            last = int(m[1])
        elif "Switching to ASGD" in line and switch is None:
            switch = last
    test = re.search(r"test ppl\s+([\d.]+)", text)
    return {"epochs": epochs, "asgd_after": switch, "test_ppl": float(test[1]) if test else None}


OUR_SWITCH = re.compile(r"^epoch (\d+) \|.*switched to averaged SGD", re.M)


def parse_ours(out: Path, log_text: str = "") -> dict:
    """Epochs (epoch, seconds, valid ppl), the averaging start (from ``log_text``, the command's
    output, else from the averaged validations) and the test ppl of an lm train run."""
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    metrics = json.loads((out / "metrics.json").read_text())
    start = records[0]["time"] - records[0].get("train_time_s", 0.0)  # the run's first training step began here
    epochs, switch, prev = [], None, start
    for r in records:
        if r["split"] == "valid":
            epochs.append((int(round(r["epoch"])), r["time"] - prev, r["ppl"]))
            prev = r["time"]
    for h in metrics.get("history", []):
        if h.get("averaged") and switch is None:
            switch = int(round(h["epoch"])) - 1
    found = OUR_SWITCH.search(log_text)
    if found:  # also a switch after the last epoch, which no validation shows
        switch = int(found[1])
    return {"epochs": epochs, "asgd_after": switch, "test_ppl": metrics.get("test_ppl")}


def table(awd: dict, ours: dict, valid_rows: int) -> str:
    """The side-by-side lines: epoch, valid ppl of both, their ratio, seconds of both.

    awd's ``evaluate`` divides the summed loss of the ``valid_rows − 1`` predicted rows (batchified
    at 10 columns) by ``valid_rows``; the column "awd ÷(R−1)" puts its perplexity on our mean over
    predicted words, ``ppl ** (R / (R − 1))``, and the ratio uses that one."""
    rows = ["| epoch | awd valid ppl (printed) | awd ÷(R−1) | ours valid ppl | ours/awd | awd s/epoch | ours s/epoch |",
            "|---|---|---|---|---|---|---|"]
    theirs = {e: (s, p) for e, s, p in awd["epochs"]}
    for e, s, p in ours["epochs"]:
        if e in theirs:
            s2, p2 = theirs[e]
            fair = p2 ** (valid_rows / (valid_rows - 1))
            rows.append(f"| {e} | {p2:.2f} | {fair:.2f} | {p:.2f} | {p / fair:.3f} | {s2:.1f} | {s:.1f} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- running both

def prepare(checkout: Path, patch: str, dst: Path) -> None:
    """Copy ``checkout`` (never modified) to ``dst`` and apply ``awd_patches/<patch>``."""
    shutil.copytree(checkout, dst, ignore=shutil.ignore_patterns(".git"))
    subprocess.run(["patch", "-p1", "--forward", "--quiet", "-d", str(dst), "-i", str(PATCHES / patch)], check=True)
    for fix in FIXES[patch]:
        print(f"applied to {dst.name}: {fix}")


def one_thread_env(extra_path: Optional[Path] = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    paths = [str(REPO / "src")] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
    return env


def logged_run(cmd: list[str], log: Path, what: str, **kwargs) -> str:
    """Run ``cmd`` with its output written to ``log`` as it comes; its output, or SystemExit."""
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, **kwargs).returncode
    text = log.read_text()
    if code:
        raise SystemExit(f"{what} failed (exit {code}); see {log}\n{text[-2000:]}")
    return text


def run_awd(awd_dir: Path, qrnn_dir: Path, args: list[str], log: Path) -> dict:
    cmd = [sys.executable, "main.py", *args]
    print("$ (cd", awd_dir, "&&", " ".join(cmd), ")", flush=True)
    t0 = time.perf_counter()
    text = logged_run(cmd, log, "awd-lstm-lm main.py", cwd=awd_dir, env=one_thread_env(qrnn_dir))
    result = parse_awd(text)
    result["wall_s"] = time.perf_counter() - t0
    return result


def run_ours(args: list[str], out: Path, log: Path) -> dict:
    cmd = [sys.executable, "-m", "quasirnn", *args]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    text = logged_run(cmd, log, "lm train", env=one_thread_env())
    result = parse_ours(out, text)
    result["wall_s"] = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------- the neural cache

def awd_dictionary(data: Path) -> dict[str, int]:
    """awd-lstm-lm's word ids (data.Corpus: first appearance over train, valid, test)."""
    ids: dict[str, int] = {}
    for split in SPLITS:
        for line in (data / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            for w in line.split() + ["<eos>"]:
                ids.setdefault(w, len(ids))
    return ids


def convert_awd_model(model_file: Path, awd_dir: Path, qrnn_dir: Path, cfg: dict, vocab_size: int):
    """Our ``LanguageModel`` with the weights of awd's saved QRNN model (via ``from_torchqrnn``)."""
    import torch
    from quasirnn.convert import from_torchqrnn
    from quasirnn.models import LanguageModel

    sys.path.insert(0, str(qrnn_dir))
    sys.path.insert(0, str(awd_dir))  # awd's model.py, weight_drop.py … for unpickling
    try:
        saved = torch.load(model_file, map_location="cpu", weights_only=False)
    finally:
        sys.path[:2] = []
    sd = (saved[0] if isinstance(saved, (list, tuple)) else saved).state_dict()
    model = LanguageModel(vocab_size, cfg["emsize"], cfg["nhid"], num_layers=cfg["nlayers"], cell="qrnn",
                          tie_weights=True, softmax="full")
    model.encoder.weight.data.copy_(sd["encoder.weight"])
    model.decoder.bias.data.copy_(sd["decoder.bias"])
    for layer in range(cfg["nlayers"]):
        n_in = cfg["emsize"] if layer == 0 else cfg["nhid"]
        qrnn = from_torchqrnn(sd, prefix=f"rnns.{layer}.", input_size=n_in)
        model.rnns[layer].load_state_dict(qrnn.state_dict())
    return model.eval()


def run_pointer(awd_dir: Path, qrnn_dir: Path, data: Path, model_file: Path, cache: dict, log: Path) -> dict:
    """awd's pointer.py on ``model_file``: valid and test perplexity (its exp(sum / N))."""
    cmd = [sys.executable, "pointer.py", "--model", "QRNN", "--data", str(data), "--save", str(model_file), "--cuda",
           "--bptt", str(cache["bptt"]), "--window", str(cache["window"]), "--theta", str(cache["theta"]),
           "--lambdasm", str(cache["lambd"])]
    print("$ (cd", awd_dir, "&&", " ".join(cmd), ")", flush=True)
    t0 = time.perf_counter()
    text = logged_run(cmd, log, "awd-lstm-lm pointer.py", cwd=awd_dir, env=one_thread_env(qrnn_dir))
    found = re.findall(r"End of pointer \| (val|test) loss\s+([\d.]+) \| \w+ ppl\s+([\d.]+)", text)
    return {split: float(ppl) for split, _, ppl in found} | {"seconds": time.perf_counter() - t0}


def our_cache_on(model, data: Path, cache: dict) -> dict:
    """Our neural cache on awd's reduced valid split with awd's word ids; both perplexity
    conventions: ours exp(sum / (N − 1)) and pointer.py's exp(sum / N)."""
    import torch
    from quasirnn.experiments.language_model.cache_pointer import NeuralCache, evaluate_with_cache

    ids_of = awd_dictionary(data)
    words = [w for line in (data / "valid.txt").read_text(encoding="utf-8").splitlines() for w in line.split() + ["<eos>"]]
    ids = torch.tensor([ids_of[w] for w in words])
    t0 = time.perf_counter()
    r = evaluate_with_cache(model, ids, NeuralCache(cache["window"], cache["theta"], cache["lambd"]), bptt=cache["bptt"])
    n = len(words)
    return {"ppl": math.exp(r.cache_loss), "plain_ppl": math.exp(r.loss),
            "ppl_awd_convention": math.exp(r.cache_loss * r.tokens / n), "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- the layers alone

def layer_speed(qrnn_dir: Path, T: int = 70, B: int = 20, N: int = 400, H: int = 400, repeats: int = 20) -> dict:
    """Median ms of one forward + backward of a window-2 layer N → H on (T, B, N) float32:
    pytorch-qrnn's ``QRNNLayer`` (its CPU loop) and our ``QRNN``, interleaved so that both see the
    same load."""
    import statistics

    import torch
    from quasirnn import QRNN

    torch.set_num_threads(1)
    sys.path.insert(0, str(qrnn_dir))
    try:
        from torchqrnn import QRNNLayer
    finally:
        sys.path.pop(0)
    layers = {"pytorch-qrnn": QRNNLayer(N, H, window=2, output_gate=True), "ours": QRNN(N, H, window=2)}
    x = torch.randn(T, B, N, requires_grad=True)
    times: dict[str, list[float]] = {name: [] for name in layers}
    for i in range(repeats + 3):
        for name, layer in layers.items():
            t0 = time.perf_counter()
            out = layer(x)[0]
            out.sum().backward()
            if i >= 3:  # warm-up, first-use compilation
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


# ----------------------------------------------------------------------------- main

def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--awd", type=Path, required=True, help="a salesforce/awd-lstm-lm checkout (read only)")
    p.add_argument("--qrnn", type=Path, required=True, help="a salesforce/pytorch-qrnn checkout (read only)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("QUASIRNN_DATA", "../shared/data")) / "ptb",
                   help="directory with ptb.{train,valid,test}.txt")
    p.add_argument("--train-lines", type=int, default=3000)
    p.add_argument("--valid-lines", type=int, default=400)
    p.add_argument("--test-lines", type=int, default=200)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--optimizer", nargs="+", choices=("sgd", "adam"), default=["sgd", "adam"])
    p.add_argument("--lr-sgd", type=float, default=LR["sgd"])
    p.add_argument("--lr-adam", type=float, default=LR["adam"])
    p.add_argument("--nonmono", type=int, default=DEFAULTS["nonmono"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="the seed of both programs")
    p.add_argument("--cache-window", type=int, default=500)  # awd-lstm-lm README, PTB
    p.add_argument("--cache-theta", type=float, default=1.0)
    p.add_argument("--cache-lambda", type=float, default=0.1)
    p.add_argument("--no-pointer", action="store_true", help="skip the neural-cache comparison")
    p.add_argument("--layer-speed", action="store_true",
                   help="only time one QRNN layer of each (forward + backward, T=70, B=20, 400 -> 400) and exit")
    p.add_argument("--workdir", type=Path, default=None, help="keep the copies, data and runs here (default: a temp dir)")
    a = p.parse_args(argv)
    if not (a.awd / "main.py").is_file() or not (a.qrnn / "torchqrnn").is_dir():
        p.error("--awd must hold main.py and --qrnn torchqrnn/")

    cfg = dict(DEFAULTS, nonmono=a.nonmono, seed=a.seed)
    work = a.workdir or Path(tempfile.mkdtemp(prefix="awd-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    print("work directory:", work)
    awd_dir, qrnn_dir, data = work / "awd-lstm-lm", work / "pytorch-qrnn", work / "data"
    for d in (awd_dir, qrnn_dir):
        if d.exists():
            shutil.rmtree(d)
    prepare(a.awd, "awd-lstm-lm.patch", awd_dir)
    prepare(a.qrnn, "pytorch-qrnn.patch", qrnn_dir)
    if a.layer_speed:
        ms = layer_speed(qrnn_dir)
        print("one QRNN layer, forward + backward, (70, 20, 400) -> 400, one thread, median ms: "
              + ", ".join(f"{k} {v:.2f}" for k, v in ms.items()))
        return
    stats = reduce_corpus(a.data, data, {"train": a.train_lines, "valid": a.valid_lines, "test": a.test_lines})
    print("reduced PTB:", json.dumps(stats))
    print("configuration:", json.dumps(cfg))

    results = {}
    for opt in a.optimizer:
        lr = a.lr_sgd if opt == "sgd" else a.lr_adam
        awd = run_awd(awd_dir, qrnn_dir, awd_args(cfg, opt, lr, a.epochs, data, work / f"awd-{opt}.pt"),
                      work / f"awd-{opt}.log")
        ours = run_ours(our_args(cfg, opt, lr, a.epochs, data, work / f"ours-{opt}"), work / f"ours-{opt}",
                        work / f"ours-{opt}.log")
        results[opt] = {"awd": awd, "ours": ours}
        print(f"\n## {opt} (lr {lr}{', NT-ASGD nonmono ' + str(cfg['nonmono']) if opt == 'sgd' else ''})")
        print(table(awd, ours, stats["valid"]["tokens"] // 10))
        print(f"averaging from after epoch: awd {awd['asgd_after']}, ours {ours['asgd_after']}; "
              f"test ppl (best model, batch 1): awd {awd['test_ppl']}, ours {ours['test_ppl']}; "
              f"whole run: awd {awd['wall_s']:.0f} s, ours {ours['wall_s']:.0f} s\n", flush=True)

    if not a.no_pointer and results:
        opt = a.optimizer[0]
        cache = {"window": a.cache_window, "theta": a.cache_theta, "lambd": a.cache_lambda, "bptt": 5000}
        theirs = run_pointer(awd_dir, qrnn_dir, data, work / f"awd-{opt}.pt", cache, work / "pointer.log")
        model = convert_awd_model(work / f"awd-{opt}.pt", awd_dir, qrnn_dir, cfg, len(awd_dictionary(data)))
        mine = our_cache_on(model, data, cache)
        print(f"## neural cache on awd's {opt} model, reduced valid (window {cache['window']}, theta {cache['theta']}, "
              f"lambda {cache['lambd']})")
        print(f"awd pointer.py: valid ppl {theirs.get('val')} ({theirs['seconds']:.0f} s incl. test)")
        print(f"ours (evaluate_with_cache on the from_torchqrnn conversion): ppl {mine['ppl']:.3f} "
              f"(pointer.py's exp(sum/N): {mine['ppl_awd_convention']:.3f}), without the cache "
              f"{mine['plain_ppl']:.3f} ({mine['seconds']:.1f} s)")
        cmd = [sys.executable, "-m", "quasirnn", "lm", "eval", "--checkpoint", str(work / f"ours-{opt}"), "--data",
               str(data), "--split", "valid", "--cache-pointer", "--cache-window", str(cache["window"]),
               "--cache-theta", str(cache["theta"]), "--cache-lambda", str(cache["lambd"]), "--json"]
        print("$", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, env=one_thread_env(), capture_output=True, text=True)
        print("our own run, lm eval --cache-pointer:", proc.stdout.strip() or proc.stderr.strip()[-1000:])
    (work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
