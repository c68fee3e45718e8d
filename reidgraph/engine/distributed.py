"""Distributed data parallel set-up for ``torchrun`` (gloo on CPU, nccl on CUDA)."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta

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


# Seconds a process waits in a collective for the others before it gives up (gloo's own default is 30 minutes):
# a stopped or vanished peer then ends the job in bounded time instead of leaving the others blocked.
TIMEOUT_S = 300


def init_distributed(device: str = "cpu", timeout_s: float = TIMEOUT_S) -> Dist:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Without ``WORLD_SIZE`` > 1 this is a single process and nothing is initialised. Otherwise every collective
    waits at most ``timeout_s`` seconds for the other processes, and the process asks Linux to end it when its
    parent (the ``torchrun`` agent) dies, so that no rank is left orphaned and blocked.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    want = torch.device(device)
    if world_size <= 1:
        return Dist(device=want)
    if not timeout_s > 0:
        raise ValueError(f"--timeout {timeout_s} must be a positive number of seconds, e.g. {TIMEOUT_S}")
    rank = int(os.environ["RANK"])
    if want.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        want = torch.device("cuda", local)
    if not dist.is_initialized():
        end_with_parent()
        dist.init_process_group("nccl" if want.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    return Dist(rank=rank, world_size=world_size, device=want)


def end_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux's ``PR_SET_PDEATHSIG``; a no-op
    elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def peer_failure(err: BaseException) -> bool:
    """Whether ``err`` says that another process of the job stopped answering or exited: a ``DistError``, or the
    plain ``RuntimeError`` gloo raises on a timeout or a closed connection, while a process group is up."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    text = str(err)
    return isinstance(err, dist.DistError) or isinstance(err, RuntimeError) and (
        "gloo" in text or "Timed out" in text or "Connection closed by peer" in text)


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
