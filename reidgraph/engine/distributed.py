"""Distributed data parallel set-up for ``torchrun`` (gloo on CPU, nccl on CUDA)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world_size``; ``device`` to train on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and prints tables."""
        return self.rank == 0


def init_distributed(device: str = "cpu") -> Dist:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Without ``WORLD_SIZE`` > 1 this is a single process and nothing is initialised.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    want = torch.device(device)
    if world_size <= 1:
        return Dist(device=want)
    rank = int(os.environ["RANK"])
    if want.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        want = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world_size, device=want)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """The model wrapped in ``DistributedDataParallel`` when the job has several processes."""
    if d.world_size == 1:
        return model
    ids = [d.device.index] if d.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def barrier(d: Dist) -> None:
    """Wait for every process (a no-op for a single one)."""
    if d.world_size > 1:
        dist.barrier()
