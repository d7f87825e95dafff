"""Build (on first use) and load the C++ CPU kernels: QRNN pooling and the SRU recurrence.

The sources ``csrc/pooling_cpu.cpp`` and ``csrc/sru_cpu.cpp`` (sharing ``csrc/cpu_common.h``)
are compiled together into one library with ``torch.utils.cpp_extension.load`` in the PyTorch
extensions cache (``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``), so only the first
import on a machine pays for the compiler (one to two minutes on 2 cores). The build is
specialised to this processor (``-march=native``); the cache name carries a hash of the
processor's features, so a home directory shared between different machines stays safe, and a
hash of the source folder's path, so two checkouts (say two git worktrees) sharing one cache
each keep their own build instead of rebuilding over each other's.

If building fails (no compiler, no ninja), :func:`load` warns once and returns False; callers
then use the vectorised pure-PyTorch kernel in :mod:`quasirnn.ops.torch_kernel`. Setting
``QUASIRNN_NO_EXTENSION=1`` skips the build on purpose.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import warnings
from pathlib import Path

import torch

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = (_CSRC / "pooling_cpu.cpp", _CSRC / "sru_cpu.cpp")  # both include cpu_common.h
_lock = threading.Lock()
_loaded: bool | None = None


def _cpu_signature() -> str:
    """A short hash of the processor model and instruction-set flags."""
    text = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features", "model name")):
                    text += line
    except OSError:
        pass
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _checkout_signature() -> str:
    """A short hash of where the sources live (ninja rebuilds when their contents change)."""
    return hashlib.sha1(str(_CSRC.resolve()).encode()).hexdigest()[:8]


def _flags() -> tuple[list[str], list[str]]:
    # No errno, no FP traps, no signed zeros: lets the compiler vectorise the activation maths.
    # NaN and inf keep IEEE semantics, so a diverged run still shows NaN.
    cflags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros"]
    ldflags = ["-fopenmp"]
    if platform.machine() in ("x86_64", "AMD64", "aarch64"):
        cflags.append("-march=native")
    return cflags, ldflags


def load() -> bool:
    """Build and load the CPU kernel if possible.

    Returns:
        True when ``torch.ops.quasirnn_cpu.pool_forward`` / ``pool_backward`` and
        ``sru_forward`` / ``sru_backward`` are available,
        False when the build failed or was disabled (a single ``RuntimeWarning`` says why).
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        if os.environ.get("QUASIRNN_NO_EXTENSION", "") not in ("", "0"):
            _loaded = False
            return False
        try:
            from torch.utils import cpp_extension

            cflags, ldflags = _flags()
            cpp_extension.load(
                name=f"quasirnn_cpu_{_cpu_signature()}_{_checkout_signature()}",
                sources=[str(p) for p in _SOURCES],
                extra_cflags=cflags,
                extra_ldflags=ldflags,
                is_python_module=False,
                verbose=os.environ.get("QUASIRNN_VERBOSE_BUILD", "") not in ("", "0"),
            )
            torch.ops.quasirnn_cpu.pool_forward  # noqa: B018 - raises if registration failed
            torch.ops.quasirnn_cpu.sru_forward  # noqa: B018
            _loaded = True
        except Exception as exc:  # any build or load failure means: use the fallback
            lines = str(exc).strip().splitlines()
            reason = lines[-1] if lines else repr(exc)
            warnings.warn(
                f"quasirnn: could not build the C++ CPU pooling kernel ({type(exc).__name__}: {reason}); "
                "using the slower pure-PyTorch kernel. Install a C++ compiler and `ninja` to get the fast one.",
                RuntimeWarning,
                stacklevel=3,
            )
            _loaded = False
        return _loaded
