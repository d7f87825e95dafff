"""Compile every Triton kernel specialisation the host code launches, without a GPU.

Run as a script (``python tests/ops/triton_static_probe.py [--quick]``); prints one JSON object.
A stand-in driver answers Triton's device queries as a CUDA device would; Triton's
``knobs.runtime.jit_cache_hook`` receives the signature, constexprs and specialisation attributes
of every launch and cancels it. QRNN and SRU layers (float32/bfloat16/float16; f/fo/ifo pooling,
with and without zoneout) then run forward and backward on CPU tensors at two shapes, one the
planner (told it has 132 multiprocessors, as an H100/H200) splits into time chunks and one it
does not. Each distinct specialisation is compiled with ``triton.compile`` for sm_80 and sm_90;
the bundled ``ptxas -v`` reports registers and spills, and ``nvdisasm`` the SASS, in which every
loop (a backward branch) is measured in bytes of global loads (LDG) per thread per iteration.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"  # real JIT functions, compiled, never run
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402
import triton  # noqa: E402
from triton import knobs  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

sys.path.insert(0, os.environ.get("QUASIRNN_SRC") or str(Path(__file__).resolve().parents[2] / "src"))
from quasirnn import QRNN, SRU  # noqa: E402
from quasirnn.ops import triton_runtime  # noqa: E402
from quasirnn.ops.pooling import triton_kernel as tk  # noqa: E402

BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
SMS = 132
#: (T, B, H): chunked in time by the planner at 132 SMs, and not chunked.
SHAPES = {"chunked": (128, 8, 320), "unchunked": (32, 256, 320)}
ARCHS = (80, 90)


class StandInDriver:
    """Answers the queries ``JITFunction.run`` makes before compiling, as CUDA device 0 would."""

    def __init__(self, cc: int):
        self.target = GPUTarget("cuda", cc, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return self.target

    def get_active_torch_device(self):
        return torch.device("cpu")


def record_launches(dtypes, poolings, zoneouts, shapes):
    """Runs the layers forward and backward; returns the distinct launched specialisations."""
    seen = {}

    def hook(*, key, repr, fn, compile, is_manual_warmup, already_compiled):
        jf = fn.jit_function
        spec = (jf.fn.__name__, str(key))
        seen.setdefault(spec, (jf, compile))
        return True  # cancel: nothing runs

    triton.runtime.driver.set_active(StandInDriver(90))
    knobs.runtime.jit_cache_hook = hook
    triton_runtime.usable_on = lambda device: True  # both kernels check the device through it
    tk.target_programs = lambda device: tk.PROGRAMS_PER_SM * SMS
    torch.manual_seed(0)
    for T, B, H in shapes:
        for dtype in dtypes:
            x = torch.randn(T, B, H, dtype=dtype, requires_grad=True)
            models = [QRNN(H, H, window=2, pooling=p, zoneout=zo, backend="triton") for p in poolings for zo in zoneouts]
            models += [SRU(H, H, backend="triton")] if _sru_has_triton() else []
            for model in models:
                model = model.to(dtype).train()
                out, _ = model(x)
                out.float().sum().backward()
    knobs.runtime.jit_cache_hook = None
    return seen


def _sru_has_triton() -> bool:
    from quasirnn.ops import SRU_BACKENDS

    return "triton" in SRU_BACKENDS


LDG = re.compile(r"\bLDG\.E((?:\.[A-Z0-9_]+)*)")


def _ldg_bytes(suffix: str) -> int:
    parts = suffix.split(".")
    for width, size in (("128", 16), ("64", 8), ("U16", 2), ("S16", 2), ("U8", 1), ("S8", 1)):
        if width in parts:
            return size
    return 4


def loops_in_sass(sass: str) -> list[int]:
    """Bytes of LDG per thread in each loop of the SASS (a branch back to an earlier label)."""
    lines = sass.splitlines()
    labels, loops = {}, []
    for n, line in enumerate(lines):
        m = re.match(r"\s*(\.L_x_\d+):", line)
        if m:
            labels[m.group(1)] = n
        m = re.search(r"\bBRA\b.*?`?\(?(\.L_x_\d+)", line)
        if m and m.group(1) in labels:
            body = lines[labels[m.group(1)]:n]
            loops.append(sum(_ldg_bytes(x.group(1)) for ln in body for x in LDG.finditer(ln)))
    return [n for n in loops if n]  # loops without loads: the final `BRA` to itself


def compile_one(jf, comp, cc: int, workdir: Path) -> dict:
    src = ASTSource(jf, comp["signature"], comp["constants"], comp["configs"][0])
    kernel = triton.compile(src, target=GPUTarget("cuda", cc, 32), options={"num_warps": comp["num_warps"]})
    ptx = workdir / "k.ptx"
    ptx.write_text(kernel.asm["ptx"])
    arch = f"sm_{cc}a" if cc == 90 else f"sm_{cc}"
    from triton.backends.nvidia.compiler import get_ptxas  # the ptxas Triton itself uses for ``cc``

    info = subprocess.run([get_ptxas(cc).path, "-v", f"-arch={arch}", str(ptx), "-o", str(workdir / "k.o")],
                          capture_output=True, text=True, check=True).stderr
    regs = int(re.search(r"Used (\d+) registers", info).group(1))
    spills = sum(int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", info))
    cubin = workdir / "k.cubin"
    cubin.write_bytes(kernel.asm["cubin"])
    sass = subprocess.run([str(BIN / "nvdisasm"), "-c", str(cubin)], capture_output=True, text=True, check=True).stdout
    return {"regs": regs, "spills": spills, "loops": loops_in_sass(sass)}


def main(argv: list[str]) -> dict:
    quick = "--quick" in argv
    dtypes = (torch.float32, torch.bfloat16) + ((torch.float16,) if "--full" in argv else ())
    poolings = ("f", "fo", "ifo")
    if quick:
        dtypes = (torch.bfloat16,)
    zoneouts = (0.0, 0.25)
    global _JOBS
    seen = record_launches(dtypes, poolings, zoneouts, SHAPES.values())
    _JOBS = [(jf, comp, cc) for _, (jf, comp) in sorted(seen.items(), key=lambda kv: kv[0]) for cc in ARCHS]
    workers = max(1, min(8, os.cpu_count() or 1))
    with multiprocessing.get_context("fork").Pool(workers) as pool:  # children inherit the jobs
        results = pool.map(_job, range(len(_JOBS)), chunksize=1)
    return {"specialisations": len(seen), "results": results}


_JOBS: list = []


def _job(n: int) -> dict:
    jf, comp, cc = _JOBS[n]
    dtype = next(v for v in comp["signature"].values() if v.startswith("*"))
    row = {"kernel": jf.fn.__name__, "arch": f"sm_{cc}", "dtype": dtype[1:], "num_warps": comp["num_warps"],
           "constexprs": {jf.arg_names[k[0]]: str(v) for k, v in comp["constants"].items()}}
    with tempfile.TemporaryDirectory() as tmp:
        row.update(compile_one(jf, comp, cc, Path(tmp)))
    return row


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
