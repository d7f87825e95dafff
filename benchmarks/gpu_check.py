"""The one command for a lent GPU (≤ 8 minutes): correctness of the Triton kernels on CUDA, then
the speed tables of the papers' claims, side by side in one run.

1. Kernels against the references on CUDA: QRNN pooling (f/fo/ifo, zoneout) and the SRU
   recurrence, forward and backward; float32 within 1e-5 and bfloat16 within 1e-2 relative.
2. Figure 4 of the QRNN paper: one QRNN layer (window 2, fo-pooling) vs cuDNN LSTM, H = 320,
   B ∈ {8..256} × T ∈ {32..512}, inference and forward+backward, the paper's ratio beside each cell.
3. SRU vs cuDNN LSTM, forward+backward, on the same grid.
4. Pooling bandwidth vs a device copy at (T, B, H) = (512, 32, 512) and (4096, 16, 1024).
5. PTB language-model training step at AWD-QRNN sizes (emb 400, hidden 1550, 4 layers, batch 20,
   BPTT 70): QRNN vs LSTM, random tokens of the 10k vocabulary.

Prints markdown and writes ``gpu_check.json`` to ``--out DIR``. Without CUDA it exits with one line.

    python benchmarks/gpu_check.py --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import PAPER_FIG4, bandwidth_rows, fwd_bwd, grid_rows, interleaved_medians, print_grid  # noqa: E402

BATCHES = (8, 16, 32, 64, 128, 256)
LENGTHS = (32, 64, 128, 256, 512)


def _rel(x, ref):
    return ((x.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def check_kernels(device):
    """Rows (op, dtype, worst relative error, tolerance, ok) of the Triton kernels vs references."""
    from quasirnn.ops import qrnn_pooling, sru_recurrence

    rows = []
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 1e-2)):
        for pooling, G in (("f", 2), ("fo", 3), ("ifo", 4)):
            for zoneout in (False, True):
                torch.manual_seed(0)
                T, B, H = 300, 8, 320
                gates = torch.randn(T, B, G * H, device=device, dtype=dtype, requires_grad=True)
                mask = torch.bernoulli(torch.full((T, B, H), 0.8, device=device)).to(dtype) if zoneout else None
                up = torch.randn(T, B, H, device=device)
                errs = []
                outs = {}
                for backend in ("triton", "reference"):
                    g = gates if backend == "triton" else gates.detach().double().requires_grad_()
                    m = mask if backend == "triton" or mask is None else mask.double()
                    h, c, _ = qrnn_pooling(g, None, pooling, m, backend=backend)
                    (dg,) = torch.autograd.grad((h.double() * up).sum(), g)
                    outs[backend] = (h, dg)
                errs = [_rel(a, b) for a, b in zip(outs["triton"], outs["reference"])]
                rows.append((f"qrnn_pooling {pooling}{' zoneout' if zoneout else ''}", str(dtype)[6:], max(errs), tol))
        torch.manual_seed(0)
        T, B, H = 300, 8, 320
        leaves = [torch.randn(*s, device=device, dtype=dtype) for s in ((T, B, 3 * H), (T, B, H), (2, H), (2, H))]
        up = torch.randn(T, B, H, device=device)
        res = {}
        for backend in ("triton", "reference"):
            xs = [t.clone().requires_grad_() if backend == "triton" else t.double().requires_grad_() for t in leaves]
            h, _, _ = sru_recurrence(xs[0], xs[2], xs[3], x=xs[1], backend=backend)
            res[backend] = (h, *torch.autograd.grad((h.double() * up).sum(), xs))
        errs = [_rel(a, b) for a, b in zip(res["triton"], res["reference"])]
        rows.append(("sru_recurrence", str(dtype)[6:], max(errs), tol))
    return [(*r, r[2] <= r[3]) for r in rows]


def sru_grid(device, warmup, repeat):
    from quasirnn import SRU

    rows = {}
    for B in BATCHES:
        for T in LENGTHS:
            torch.manual_seed(0)
            x = torch.randn(T, B, 320, device=device)
            t = interleaved_medians({"lstm": fwd_bwd(nn.LSTM(320, 320).to(device), x),
                                     "sru": fwd_bwd(SRU(320, 320, backend="triton").to(device), x)},
                                    warmup, repeat, device)
            rows[B, T] = (t["lstm"], t["sru"])
    return rows


def ptb_step(device, warmup, repeat):
    """Median ms of one training step (truncated BPTT, as ``lm train``) of QRNN and LSTM models."""
    from quasirnn.experiments.language_model import LMConfig, build_model, lm_loss
    from quasirnn.training.optim import optimizer_step

    vocab, batch, bptt = 10000, 20, 70
    fns = {}
    for cell in ("qrnn", "lstm"):
        config = LMConfig().replace(cell=cell, emb_size=400, hidden_size=1550, num_layers=4, zoneout=0.0,
                                    softmax="full")  # AWD-QRNN's output layer
        torch.manual_seed(0)
        model = build_model(config.model, vocab).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        data = torch.randint(0, vocab, (bptt + 1, batch), device=device)

        def step(model=model, opt=opt, data=data):
            optimizer_step(model, opt, lm_loss(model, data[:-1], data[1:], None)[0], 0.25)

        fns[cell] = step
    return interleaved_medians(fns, warmup, repeat, device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="directory for gpu_check.json")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    start = time.time()
    report = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__}
    print(f"# gpu_check on {report['gpu']} (torch {torch.__version__})\n")

    checks = check_kernels(device)
    report["kernels"] = [dict(op=o, dtype=d, rel_error=e, tol=t, ok=ok) for o, d, e, t, ok in checks]
    print("| op | dtype | worst relative error | tolerance | ok |\n|---|---|---|---|---|")
    for o, d, e, t, ok in checks:
        print(f"| {o} | {d} | {e:.2e} | {t:g} | {'yes' if ok else 'NO'} |")

    for mode, title in (("inference", "Figure 4 grid, inference: cuDNN LSTM ms / QRNN ms (paper)"),
                        ("train", "Figure 4 grid, forward+backward: cuDNN LSTM ms / QRNN ms (paper, inference)")):
        rows = grid_rows(BATCHES, LENGTHS, 320, 2, "triton", device, args.warmup, args.repeat, mode)
        print_grid(rows, BATCHES, LENGTHS, title, with_paper=True)
        report[f"fig4_{mode}"] = {f"{B}x{T}": dict(lstm_ms=l, qrnn_ms=q, paper=PAPER_FIG4[B][T])
                                  for (B, T), (l, q) in rows.items()}

    rows = sru_grid(device, args.warmup, args.repeat)
    print_grid(rows, BATCHES, LENGTHS, "SRU forward+backward: cuDNN LSTM ms / SRU ms", with_paper=False)
    report["sru_train"] = {f"{B}x{T}": dict(lstm_ms=l, sru_ms=s) for (B, T), (l, s) in rows.items()}

    report["bandwidth"] = {}
    for T, B, H in ((512, 32, 512), (4096, 16, 1024)):
        print(f"\nPooling bandwidth at (T, B, H) = ({T}, {B}, {H})\n\n| what | ms | GB/s | of copy |\n|---|---|---|---|")
        cells = bandwidth_rows(T, B, H, device, args.warmup, args.repeat)
        for name, _nbytes, ms, gbs, frac in cells:
            print(f"| {name} | {ms:.3f} | {gbs:.0f} | {frac:.0%} |")
        report["bandwidth"][f"{T}x{B}x{H}"] = [dict(what=n, ms=ms, gbs=g, of_copy=f) for n, _, ms, g, f in cells]

    t = ptb_step(device, args.warmup, args.repeat)
    print(f"\nPTB LM training step (AWD-QRNN sizes)\n\n| cell | ms | LSTM / this |\n|---|---|---|")
    for cell in ("qrnn", "lstm"):
        print(f"| {cell} | {t[cell]:.2f} | {t['lstm'] / t[cell]:.2f}x |")
    report["ptb_step_ms"] = t
    report["seconds"] = time.time() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(f"\n{report['seconds']:.0f} s; JSON in {args.out / 'gpu_check.json'}")
    return 0 if all(c[-1] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
