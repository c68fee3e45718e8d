"""Stage 1 (paper §3.3 "Training Stage", first step): train the FEN with softmax + batch-hard triplet, P×K batches."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from torch.utils.data import DataLoader

from .._checks import first_line, int_in_range
from ..data.datasets import ImageRecord
from ..data.samplers import PKSampler
from ..losses import batch_hard_triplet_loss, softmax_loss
from ..checkpoint import load_checkpoint, stage_config
from .distributed import Dist, wrap
from .loop import OptimConfig, records_fingerprint, run_epochs, train_steps

if TYPE_CHECKING:  # torchvision: at run time, only where a network is built
    from ..models import FEN, FENOutput


@dataclass
class FENTrainConfig(OptimConfig):
    """Stage-1 settings: backbone, image size and augmentation, P×K batches (paper §3.3 "Training Stage", §4.2).

    Attributes:
        arch: the FEN's torchvision backbone.
        weights: a local torchvision state dict that initialises the backbone (``None``: random).
        height: height in pixels the images are resized to.
        width: width in pixels the images are resized to.
        P: identities per batch.
        images_per_id: images per identity in a batch (the K of "P×K", not the
            graph's neighbors ``GraphSettings.K``).
        pad: padding in pixels before the random crop.
        erasing: probability of random erasing.
        num_workers: data loading processes.
    """

    epochs: int = 60
    lr_step: int = 20
    arch: str = "resnet50"
    weights: str | None = None
    height: int = 256
    width: int = 128
    P: int = 16
    images_per_id: int = 4
    pad: int = 10
    erasing: float = 0.5
    num_workers: int = 2

    def check(self) -> None:
        super().check()
        int_in_range("num_workers", self.num_workers, 0, 1024)


def fen_losses(out: FENOutput, y: torch.Tensor, config: OptimConfig) -> dict[str, torch.Tensor]:
    """The FEN's own losses (paper §3.3, stage 1): softmax on its logits, batch-hard triplet on its pre-neck feature.

    Args:
        out: the FEN's training output on ``B`` images (``logits [B, C]``, ``feat [B, D]``).
        y: ``[B]`` class indices in ``[0, C)``.
        config: label smoothing and triplet margin.
    """
    return {"softmax": softmax_loss(out.logits, y, config.label_smoothing),
            "triplet": batch_hard_triplet_loss(out.feat, y, config.margin)}


def train_fen(train: Sequence[ImageRecord], config: FENTrainConfig | None = None, *,
              checkpoint: str | Path | None = None, log_path: str | Path | None = None, resume: bool = True,
              dist: Dist = Dist(), progress: bool = True) -> FEN:
    """Train a FEN on labelled training images.

    Args:
        train: the training split's records (path, pid, camid).
        config: stage-1 settings.
        checkpoint: file for the state after each epoch; resumed from when it
            exists and ``resume``.
        log_path: JSON-lines log, one record per epoch.
        dist: the distributed job (from :func:`~reidgraph.engine.distributed.init_distributed`);
            each process trains on its share of every epoch's P×K batches.
        progress: show progress bars (main process only).

    Returns:
        The trained :class:`~reidgraph.models.FEN` (unwrapped, eval mode).
    """
    from ..data.image_dataset import ImageDataset
    from ..data.transforms import build_transforms
    from ..models import FEN

    config = config or FENTrainConfig()
    config.check()
    data = ImageDataset(train, build_transforms(config.height, config.width, train=True, pad=config.pad,
                                                 erasing=config.erasing))
    classes, targets = data.pids.unique(return_inverse=True)
    sampler = PKSampler(data.pids, P=config.P, images_per_id=config.images_per_id, seed=config.seed,
                        rank=dist.rank, world_size=dist.world_size)
    loader = DataLoader(data, batch_sampler=sampler, num_workers=config.num_workers,
                        persistent_workers=config.num_workers > 0)
    torch.manual_seed(config.seed)
    fen = FEN(config.arch, num_classes=len(classes), weights=config.weights).to(dist.device)
    model = wrap(fen, dist)
    optimizer, schedule = config.optimizer(fen.parameters())

    def losses(batch) -> dict:
        images, _, _, index = batch
        return fen_losses(model(images.to(dist.device)), targets[index].to(dist.device), config)

    def train_epoch(epoch: int) -> dict:
        sampler.set_epoch(epoch)
        model.train()
        means = train_steps(loader, losses, optimizer, desc=f"fen epoch {epoch + 1}/{config.epochs}",
                            progress=progress and dist.is_main)
        return {**means, "processes": dist.world_size, "batches_per_process": len(loader)}

    run_epochs(kind="fen", epochs=config.epochs, modules={"fen": fen}, optimizer=optimizer, scheduler=schedule,
               config=stage_config(config, fen=fen.config(), classes=classes.tolist()),
               train_epoch=train_epoch, checkpoint=Path(checkpoint) if checkpoint else None,
               log_path=Path(log_path) if log_path else None, resume=resume, dist=dist,
               data=records_fingerprint(data.records))
    return fen.eval()


def load_fen(path: str | Path) -> tuple[FEN, dict]:
    """A trained FEN (eval mode, no classifier needed for retrieval) and its stage-1 settings.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: (one line) not a reidgraph checkpoint, another kind of one, or a ``fen`` checkpoint
            without a loadable FEN in it.
    """
    from ..models import FEN

    state = load_checkpoint(path, "fen")
    try:
        fen = FEN.from_config(state["config"]["fen"])
        fen.load_state_dict(state["modules"]["fen"])
    except (KeyError, TypeError, RuntimeError) as err:  # a "fen" checkpoint without a loadable FEN in it
        raise ValueError(f"{path} is a 'fen' checkpoint without a loadable FEN ({first_line(err)}); pass the "
                         "fen.pt written by `reidgraph train`") from None
    return fen.eval(), state["config"]
