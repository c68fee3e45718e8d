"""The epoch loop every training stage shares: resume, checkpoint, log."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .._checks import int_in_range

from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import Dist, barrier

# Settings that may change between a run and its resumption without making the
# saved state meaningless (training longer is the usual reason to resume).
RESUMABLE_CHANGES = {"epochs"}


@dataclass
class OptimConfig:
    """Settings every stage shares: Adam at ``lr``, ÷10 every ``lr_step`` epochs (method.md §5),
    triplet margin and label smoothing of the losses, and the seed."""

    epochs: int = 3
    lr: float = 3e-4
    lr_step: int = 5
    weight_decay: float = 5e-4
    margin: float = 0.3
    label_smoothing: float = 0.1
    seed: int = 0

    def check(self) -> None:
        int_in_range("epochs", self.epochs, 1, 10**6)
        int_in_range("lr_step", self.lr_step, 1, 10**6)

    def optimizer(self, params) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        """Adam over the trainable ``params`` and its step schedule."""
        opt = torch.optim.Adam([p for p in params if p.requires_grad], lr=self.lr, weight_decay=self.weight_decay)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=self.lr_step, gamma=0.1)


def optimise(optimizer: torch.optim.Optimizer, parts: dict[str, torch.Tensor], totals: dict[str, float],
             num_batches: int, bar) -> None:
    """One step on the sum of the loss ``parts``; epoch means accumulate in ``totals``."""
    loss = sum(parts.values())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for key, value in parts.items():
        totals[key] = totals.get(key, 0.0) + value.item() / num_batches
    bar.set_postfix(loss=f"{loss.item():.3f}")


def run_epochs(*, kind: str, epochs: int, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
               scheduler, config: dict, train_epoch: Callable[[int], dict], checkpoint: Path | None = None,
               log_path: Path | None = None, resume: bool = True, dist: Dist = Dist()) -> None:
    """Run ``train_epoch(epoch)`` for each epoch not done yet, checkpointing after each.

    Args:
        kind: checkpoint kind (``"fen"``, ``"ffgnn"``, ``"joint"``); a checkpoint
            of another kind is refused.
        modules: everything with learned state, saved and restored by name.
        config: the run's settings; resuming from a checkpoint written with
            other settings (but ``epochs``) is refused.
        train_epoch: trains one epoch and returns its metrics for the log.
        checkpoint: where to write the state after every epoch (atomically);
            with ``resume``, an existing one is continued from.
        log_path: JSON-lines log, one record per epoch.
        dist: the distributed job; only its main process writes.
    """
    start = 0
    if checkpoint is not None and resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, kind)
        changed = sorted(k for k in set(config) | set(state["config"])
                         if k not in RESUMABLE_CHANGES and config.get(k) != state["config"].get(k))
        if changed:
            raise ValueError(f"{checkpoint} was written with other settings ({', '.join(changed)}); "
                             "pass another output folder, or drop resuming")
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["epoch"]
        if dist.is_main:
            print(f"{kind}: resuming after epoch {start} from {checkpoint}")
    for epoch in range(start, epochs):
        metrics = train_epoch(epoch)
        scheduler.step()
        if dist.is_main:
            if checkpoint is not None:
                save_checkpoint({"kind": kind, "epoch": epoch + 1, "config": config,
                                 "modules": {name: m.state_dict() for name, m in modules.items()},
                                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                                checkpoint)
            if log_path is not None:
                with open(log_path, "a") as log:
                    log.write(json.dumps({"stage": kind, "epoch": epoch + 1, **metrics,
                                          "lr": optimizer.param_groups[0]["lr"]}) + "\n")
        barrier(dist)
