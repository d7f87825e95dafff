"""Data shards of ranks, and the single-process set-up (the multi-process runs are in tests/cli/test_distributed.py)."""

from __future__ import annotations

import pytest
import torch

from quasirnn.errors import ConfigError
from quasirnn.training.distributed import Distributed, setup_distributed, shard_range


@pytest.mark.parametrize("n, world", [(8, 2), (7, 2), (10, 3), (2, 4), (0, 2)])
def test_shards_partition_the_items(n, world):
    shards = [shard_range(n, r, world) for r in range(world)]
    assert shards[0][0] == 0 and shards[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(shards, shards[1:]))  # contiguous, in rank order
    sizes = [stop - start for start, stop in shards]
    assert max(sizes) - min(sizes) <= 1


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist = setup_distributed("cpu")
    assert (dist.rank, dist.world_size, dist.enabled, dist.is_main) == (0, 1, False, True)
    model = torch.nn.Linear(2, 2)
    assert dist.wrap(model) is model and dist.sum([1, 2.5]) == [1.0, 2.5] and dist.gather("x") == ["x"]
    assert Distributed().shard(5) == slice(0, 5)


def test_a_half_set_distributed_environment_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ConfigError, match="WORLD_SIZE=2 but MASTER_ADDR"):
        setup_distributed("cpu")
