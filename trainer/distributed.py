"""Process-group setup for `torchrun --nproc-per-node N -m trainer fit` (DistributedDataParallel)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process = rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device_kind: str) -> World:
    """Join the process group torchrun describes in the environment; a no-op without torchrun."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return World()
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if device_kind == "cuda":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return world


def barrier(world: World) -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if world.size > 1:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """Sum a tensor over ranks (in place) and return it."""
    if world.size > 1:
        dist.all_reduce(t)
    return t
