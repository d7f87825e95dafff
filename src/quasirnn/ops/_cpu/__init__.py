"""The shared runtime of the numba CPU kernels (private to :mod:`quasirnn.ops`).

* :mod:`.runtime` — whether numba is usable, tensors handed to the kernels as addresses, the
  split of the work over threads, the first-use compile notice and :func:`~.runtime.compile_seconds`.
* :mod:`.intrinsics` — the kernels' scalar maths and memory hints as numba intrinsics, the
  ``kernel`` decorator and the salt of numba's cache key.
* :mod:`.time_loop` — the one block / group / time loop of every kernel, around the steps of the
  kernel modules.
* :mod:`.buffers` — the kernels' output memory, reused once freed (:func:`~.buffers.empty_cache`).

Each op's own kernels live beside it: ``ops/pooling/cpu_kernel.py``, ``ops/sru/cpu_kernel.py``.
"""
