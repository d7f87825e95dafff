"""Data-parallel training across processes: ``torch.distributed`` set up from ``torchrun``'s variables.

``torchrun --nproc_per_node N`` (and its multi-node arguments) starts N copies of a command and
gives each ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`setup_distributed` reads them: with ``WORLD_SIZE`` > 1 it joins the process group (gloo on
CPU, NCCL on CUDA, each rank on GPU ``LOCAL_RANK``); otherwise the run is a plain single process
and nothing here costs anything. :class:`Distributed` then answers who this rank is, wraps the
model in :class:`~torch.nn.parallel.DistributedDataParallel`, cuts data into per-rank shards,
and sums statistics over the ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn

from quasirnn.training.device import resolve_device
from quasirnn.errors import ConfigError

__all__ = ["Distributed", "setup_distributed", "shard_range"]

#: torchrun's variables that :func:`setup_distributed` needs besides WORLD_SIZE.
_REQUIRED_ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous part [start, stop) of ``n`` items that ``rank`` of ``world_size`` takes.

    The first ``n % world_size`` ranks take one item more; every item belongs to exactly one rank.
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass
class Distributed:
    """Where this process stands in a (possibly one-process) data-parallel run.

    Attributes:
        rank: this process's rank in [0, world_size).
        world_size: number of processes (1: no process group).
        local_rank: rank on this machine (the CUDA device index on GPUs).
        device: the torch.device this rank computes on.

    Example::

        >>> dist = Distributed(rank=1, world_size=2)
        >>> dist.enabled, dist.is_main, dist.shard(5)
        (True, False, slice(3, 5, None))
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        """True when there is more than one process (a process group is joined)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (see :func:`shard_range`)."""
        return slice(*shard_range(n, self.rank, self.world_size))

    def batch_share(self, index: Sequence[Any]) -> tuple[Sequence[Any], bool]:
        """This rank's items of a global batch (``index[rank::world_size]``) and whether they count:
        a rank whose share is empty gets the first item with False (a weight-0 stand-in that still
        joins the gradient averaging)."""
        if not self.enabled:
            return index, True
        mine = index[self.rank :: self.world_size]
        return (mine, True) if len(mine) else (index[:1], False)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (its gradients averaged over the ranks), or itself
        in a single process. Wrapping copies rank 0's parameters to every rank."""
        if not self.enabled:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of ``values`` over the ranks (float64); ``values`` itself in one process."""
        if not self.enabled:
            return [float(v) for v in values]
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable; tensors are moved to the CPU first), ordered by rank."""
        if not self.enabled:
            return [obj]
        objects: list[Any] = [None] * self.world_size
        dist.all_gather_object(objects, _to_cpu(obj))
        return objects

    def barrier(self) -> None:
        """Waits until every rank gets here (nothing in one process)."""
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leaves the process group (nothing in one process)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise ConfigError(f"the environment variable {name}={os.environ[name]!r} is not an integer") from None


def setup_distributed(device_name: Optional[str], timeout_s: float = 1800.0) -> Distributed:
    """This process's place in the run, joining the process group when torchrun started several.

    Without ``WORLD_SIZE`` (or with 1) the run is a single process on ``device_name`` (see
    :func:`quasirnn.training.device.resolve_device`). Otherwise the process group is initialised from
    the environment (``env://``): gloo when the device is the CPU, NCCL on CUDA, where rank
    ``LOCAL_RANK`` computes on GPU ``LOCAL_RANK``.

    Args:
        device_name: ``--device`` (cpu, cuda, cuda:N, auto or None).
        timeout_s: how long collective operations wait for a missing rank, in seconds.

    Raises:
        ConfigError: an unavailable device; a distributed environment that misses one of
            RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; more local ranks than GPUs.
    """
    device = resolve_device(device_name)
    world_size = _env_int("WORLD_SIZE") if os.environ.get("WORLD_SIZE") else 1
    if world_size <= 1:
        return Distributed(device=device)
    missing = [name for name in _REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: start distributed runs with torchrun")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                              f"use --nproc_per_node {torch.cuda.device_count()} or fewer")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
