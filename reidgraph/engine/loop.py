"""The loops every training stage shares: the steps of an epoch, and the epochs (resume, checkpoint, log)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from tqdm.auto import tqdm

from .._checks import int_in_range
from ..atomic import atomic_write

from ..checkpoint import load_checkpoint, save_checkpoint
from .distributed import Dist, barrier

logger = logging.getLogger(__name__)

# Settings that may change between a run and its resumption without making the
# saved state meaningless (training longer is the usual reason to resume).
RESUMABLE_CHANGES = {"epochs"}


@dataclass
class OptimConfig:
    """Settings every stage shares: Adam at ``lr``, ÷10 every ``lr_step`` epochs (paper §4.2),
    triplet margin and label smoothing of the losses, and the seed.

    Attributes:
        epochs: passes over the training data.
        lr: Adam learning rate.
        lr_step: epochs per ÷10 of the learning rate.
        weight_decay: Adam weight decay.
        margin: margin of the triplet loss.
        label_smoothing: label smoothing of the softmax loss.
        seed: seed of initialisation and sampling; the same seed gives the same result.
    """

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
        int_in_range("seed", self.seed, 0, 2**63 - 1, "torch's seeds are 64-bit")
        for name, low, high in (("lr", 0, 10.0), ("weight_decay", 0, 10.0), ("margin", 0, 100.0),
                                ("label_smoothing", 0, 1.0)):
            value = getattr(self, name)
            strict = name == "lr"
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    (low < value if strict else low <= value) and value <= high):
                raise ValueError(f"{name}={value!r} must be a number in {'(' if strict else '['}{low}, {high}]; "
                                 f"e.g. {getattr(OptimConfig, name)!r}")

    def optimizer(self, params) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        """Adam over the trainable ``params`` and its step schedule."""
        opt = torch.optim.Adam([p for p in params if p.requires_grad], lr=self.lr, weight_decay=self.weight_decay)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=self.lr_step, gamma=0.1)


def optimise(optimizer: torch.optim.Optimizer, parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """One step of ``optimizer`` on the sum of the loss ``parts``; returns that sum, detached."""
    loss = sum(parts.values())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_steps(batches: Iterable, losses: Callable[[Any], dict[str, torch.Tensor]],
                optimizer: torch.optim.Optimizer, *, desc: str, total: int | None = None,
                progress: bool = True) -> dict[str, float]:
    """One epoch: an :func:`optimise` step on the ``losses(batch)`` of each batch, behind a progress bar.

    Returns each loss part's mean over the epoch's steps, for the log.
    """
    sums: dict[str, float] = {}
    steps = 0
    bar = tqdm(batches, total=total, desc=desc, leave=False, disable=not progress)
    for batch in bar:
        parts = losses(batch)
        loss = optimise(optimizer, parts)
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value.item()
        steps += 1
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return {key: value / steps for key, value in sums.items()}


def tensor_fingerprint(what: str, feats: torch.Tensor, *labels: torch.Tensor | None) -> dict:
    """What a checkpoint records of its training data: sizes and a sha256 over the tensors' bytes.

    Cheap: the buffers are hashed as they are (no copies for contiguous CPU tensors).
    """
    digest = hashlib.sha256()
    rows = len(feats)
    for t in (feats, *labels):
        if t is None:
            digest.update(b"none")
            continue
        array = t.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.data)
    ids = int(labels[0].unique().numel()) if labels and labels[0] is not None else None
    return {"what": what, "rows": rows, "ids": ids, "sha256": digest.hexdigest()}


def records_fingerprint(records: Sequence) -> dict:
    """:func:`tensor_fingerprint` for image records ``(path, pid, camid)``: paths (relative to their
    common folder, so a moved dataset still matches) and labels."""
    paths = [str(r[0]) for r in records]
    root = os.path.commonpath(paths) if paths else ""
    digest = hashlib.sha256()
    for path, record in zip(paths, records):
        digest.update(f"{os.path.relpath(path, root) if root else path}\t{record[1]}\t{record[2]}\n".encode())
    return {"what": "images", "rows": len(records), "ids": len({r[1] for r in records}),
            "sha256": digest.hexdigest()}


def dotted(config: dict, prefix: str = "") -> dict:
    """Nested settings as one level, each named by its path: ``{"graph": {"K": 150}}`` -> ``{"graph.K": 150}``."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def describe_data(data: dict) -> str:
    ids = f", {data['ids']} ids" if data.get("ids") is not None else ""
    return f"{data['rows']} {data.get('what', 'rows')}{ids}, sha256 {data['sha256'][:12]}"


def append_log(log_path: Path, record: dict) -> None:
    """Append one JSON record to the log."""
    with open(log_path, "a") as log:
        log.write(json.dumps(record) + "\n")


def reconcile_log(log_path: Path, kind: str, records: Iterable[dict]) -> None:
    """Make the log's ``kind`` records exactly ``records`` (the checkpoint's), keeping other stages' lines.

    Records already there stay in place, missing ones (an epoch killed between its
    checkpoint and its log line) are appended, and records of epochs the
    checkpoint does not hold (a previous run's, after a restart) are dropped, as
    are unreadable lines (one cut short by a kill).
    """
    wanted = {r["epoch"]: r for r in records}
    text = log_path.read_text() if log_path.is_file() else ""
    lines, out, emitted, changed = text.splitlines(), [], set(), bool(text) and not text.endswith("\n")
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            changed = True
            continue
        if not isinstance(record, dict) or record.get("stage") != kind:
            out.append(line)
            continue
        epoch = record.get("epoch")
        if epoch in wanted and epoch not in emitted:
            emitted.add(epoch)
            out.append(json.dumps(wanted[epoch]))
            changed |= record != wanted[epoch]
        else:
            changed = True
    missing = [wanted[e] for e in sorted(wanted) if e not in emitted]
    if not changed and not missing:
        return
    out += [json.dumps(r) for r in missing]
    with atomic_write(log_path) as f:
        f.write("".join(line + "\n" for line in out))


def run_epochs(*, kind: str, epochs: int, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
               scheduler, config: dict, train_epoch: Callable[[int], dict], checkpoint: Path | None = None,
               log_path: Path | None = None, resume: bool = True, dist: Dist = Dist(),
               data: dict | None = None) -> None:
    """Run ``train_epoch(epoch)`` for each epoch not done yet, checkpointing after each.

    Args:
        kind: checkpoint kind (``"fen"``, ``"ffgnn"``, ``"joint"``); a checkpoint
            of another kind is refused.
        modules: everything with learned state, saved and restored by name.
        config: the run's settings (:func:`~reidgraph.checkpoint.stage_config`);
            resuming from a checkpoint written with other settings (but ``epochs``)
            is refused, naming them by path (``graph.k``).
        train_epoch: trains one epoch and returns its metrics for the log.
        checkpoint: where to write the state after every epoch (atomically);
            with ``resume``, an existing one is continued from.
        log_path: JSON-lines log, one record per epoch. Each epoch's record is
            also stored in the checkpoint, and on entry the log's records of this
            ``kind`` are made those of the checkpoint resumed from (none when
            starting afresh): a kill between checkpoint and log line loses no
            line, and a restart does not append to the previous run's records.
        dist: the distributed job; only its main process writes.
        data: fingerprint of the training data (:func:`tensor_fingerprint`,
            :func:`records_fingerprint`); resuming a checkpoint trained on
            other data is refused.
    """
    start, done = 0, []
    if checkpoint is not None and resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, kind)
        saved = state.get("data")
        if data is not None and saved is not None and saved.get("sha256") != data.get("sha256"):
            raise ValueError(f"{checkpoint} was trained on other {data.get('what', 'data')} ({describe_data(saved)}; "
                             f"these: {describe_data(data)}); pass --restart (resume=False) to start afresh, "
                             "or another --out")
        ours, saved_config = dotted(config), dotted(state["config"])
        changed = sorted(k for k in set(ours) | set(saved_config)
                         if k not in RESUMABLE_CHANGES and ours.get(k) != saved_config.get(k))
        if changed:
            raise ValueError(f"{checkpoint} was written with other settings ({', '.join(changed)}); "
                             "pass another output folder, or drop resuming")
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["epoch"]
        done = state["log"]
        if dist.is_main:
            logger.info("%s: resuming after epoch %d from %s", kind, start, checkpoint)
    if dist.is_main and log_path is not None:
        reconcile_log(log_path, kind, done)
    done = list(done)
    for epoch in range(start, epochs):
        metrics = train_epoch(epoch)
        scheduler.step()
        broken = [name for name, m in modules.items() if not all(bool(p.isfinite().all()) for p in m.parameters())]
        if broken:  # a model of NaN weights would be saved and then score without a word
            raise ValueError(f"{kind} epoch {epoch + 1}: the {', '.join(broken)} weights are no longer finite (the "
                             "training diverged); lower --lr and train again")
        if dist.is_main:
            record = {"stage": kind, "epoch": epoch + 1, **metrics, "lr": optimizer.param_groups[0]["lr"]}
            done.append(record)
            if checkpoint is not None:
                save_checkpoint({"kind": kind, "epoch": epoch + 1, "config": config, "data": data, "log": done,
                                 "modules": {name: m.state_dict() for name, m in modules.items()},
                                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                                checkpoint)
            if log_path is not None:
                append_log(log_path, record)
        barrier(dist)
