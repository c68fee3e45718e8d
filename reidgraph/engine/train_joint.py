"""Stage 3 (paper §3.3 "Training Stage", last step): fine-tune the FEN and the FFGNN together on image graphs.

Each epoch re-extracts the training features with the current FEN, draws N/5
anchors and finds each one's top-K among the rest (as in stage 2); each step
then pushes the K+1 images of a graph through the FEN, builds the graph from
those live features and fuses them with the FFGNN, so gradients reach both.

Losses: the FEN's own (softmax on its classifier, batch-hard triplet on its
pre-neck feature) plus stage 2's losses on the fused features, as its recipe
names them (the paper's: softmax on stage 2's identity classifier, carried
over and trained on, batch-hard triplet and verification; the default
recipe's: the cross-camera list loss). The FEN's BatchNorm layers
keep their stage-1 statistics. The edge weights ``S`` are
computed from detached features: gradients flow through the node features,
not through the k-reciprocal/top-τ selection, which is piecewise constant anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F

from .._checks import int_in_range
from ..data.datasets import ImageRecord
from ..data.samplers import neighborhood_split
from ..graph import GraphSettings, knn
from ..checkpoint import stage_config
from .distributed import Dist, wrap
from .loop import OptimConfig, records_fingerprint, run_epochs, train_steps
from .train_fen import fen_losses
from .train_gnn import GNNTrainConfig, graph_losses, recipe

if TYPE_CHECKING:  # torchvision and PyG: at run time, only when training runs
    from ..models import FEN
    from ..nn import FFGNN


@dataclass
class JointTrainConfig(OptimConfig):
    """Stage-3 settings: a smaller learning rate, since both networks start trained.

    Attributes:
        anchor_fraction: share of the training images that are anchors each epoch.
        max_graphs_per_epoch: at most this many graphs per epoch (``None``: one per anchor).
    """

    epochs: int = 2
    lr: float = 3e-5
    anchor_fraction: float = 0.2
    max_graphs_per_epoch: int | None = None

    def check(self) -> None:
        super().check()
        if self.max_graphs_per_epoch is not None:
            int_in_range("max_graphs_per_epoch", self.max_graphs_per_epoch, 1, 10**9)


def train_joint(fen: FEN, ffgnn: FFGNN, train: Sequence[ImageRecord], settings: GraphSettings,
                config: JointTrainConfig | None = None, *, height: int, width: int,
                graph_config: GNNTrainConfig | None = None, graph_classifier: torch.nn.Linear | None = None,
                checkpoint: str | Path | None = None, log_path: str | Path | None = None, resume: bool = True,
                dist: Dist = Dist(), progress: bool = True) -> tuple[FEN, FFGNN]:
    """Fine-tune a trained FEN (with its classifier) and FFGNN together.

    Args:
        fen: stage-1 FEN, with a classifier over the training identities.
        ffgnn: stage-2 FFGNN on that FEN's features.
        train: training records, the same as in stage 1.
        settings: graph settings of stage 2.
        height, width: image size of stage 1.
        graph_config: stage 2's settings, whose losses score the fused features
            (default: the default recipe's).
        graph_classifier: stage 2's identity classifier on fused features,
            needed when those losses include ``softmax``.
        dist: the distributed job; anchors are shared out between processes.

    Returns:
        ``(fen, ffgnn)`` in eval mode.
    """
    from ..data.image_dataset import ImageDataset
    from ..graph.data import adjacency_edges
    from ..data.transforms import build_transforms
    from .extract import extract_features

    config = config or JointTrainConfig()
    config.check()
    graph_config = graph_config or recipe()[1]
    if "softmax" in graph_config.losses and graph_classifier is None:
        raise ValueError("the stage-2 losses include softmax on fused features; pass stage 2's classifier as "
                         "graph_classifier (it is saved in ffgnn.pt)")
    data = ImageDataset(train, build_transforms(height, width, train=True))
    classes, targets = data.pids.unique(return_inverse=True)
    if fen.classifier is None or fen.classifier.out_features != len(classes):
        raise ValueError(f"the FEN's classifier has {0 if fen.classifier is None else fen.classifier.out_features} "
                         f"classes but the training set has {len(classes)} identities; pass the stage-1 FEN "
                         "trained on these images")
    fen.to(dist.device)
    ffgnn.to(dist.device)
    fen_ddp, gnn_ddp = wrap(fen, dist), wrap(ffgnn, dist)
    modules = {"fen": fen, "ffgnn": ffgnn}
    if "softmax" in graph_config.losses:
        modules["graph_classifier"] = graph_classifier.to(dist.device)
    optimizer, schedule = config.optimizer([p for m in modules.values() for p in m.parameters()])

    def losses(graph: torch.Tensor) -> dict:
        """The losses of one graph, given as the ``[K+1]`` training-set rows of its images, anchor first."""
        items = [data[i] for i in graph.tolist()]  # (image, pid, camid, index)
        images = torch.stack([item[0] for item in items]).to(dist.device)
        camids = torch.tensor([[item[2] for item in items]], device=dist.device)
        y = targets[graph].to(dist.device)
        out = fen_ddp(images)
        x = F.normalize(out.feat_bn, dim=1)
        s = settings.adjacency(x.detach()[None], camids)
        z = gnn_ddp(x, *adjacency_edges(s[0]))
        fused = graph_losses(z[None], y[None], camids, modules.get("graph_classifier"), graph_config)
        return {**fen_losses(out, y, config), **{f"graph_{name}": value for name, value in fused.items()}}

    def train_epoch(epoch: int) -> dict:
        feats = extract_features(fen, data.records, height, width, device=dist.device, progress=False).feats
        anchors, rest = neighborhood_split(len(data), config.anchor_fraction, seed=config.seed, epoch=epoch)
        settings.check(len(rest))
        # Every process takes the same number of graphs, so DDP's collectives stay in step.
        per_rank = len(anchors) // dist.world_size
        if config.max_graphs_per_epoch:
            per_rank = min(per_rank, max(1, config.max_graphs_per_epoch // dist.world_size))
        mine = anchors[dist.rank * per_rank:(dist.rank + 1) * per_rank]
        _, neighbors = knn(feats[mine], feats[rest], settings.K)
        nodes = torch.cat([mine[:, None], rest[neighbors]], dim=1)
        fen_ddp.train()
        gnn_ddp.train()
        # A graph's 151 images are near-duplicates of one another; letting them
        # update the FEN's BatchNorm statistics drags those towards one
        # neighborhood (measured on the demo: rank-1 48 -> 41 after one epoch).
        for module in fen.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        return train_steps(nodes, losses, optimizer, desc=f"joint epoch {epoch + 1}/{config.epochs}",
                           progress=progress and dist.is_main)

    run_epochs(kind="joint", epochs=config.epochs, modules=modules, optimizer=optimizer,
               scheduler=schedule, config=stage_config(config, height=height, width=width, graph=settings,
                                                       fen=fen.config(), ffgnn=ffgnn.config(),
                                                       graph_losses=graph_config),
               train_epoch=train_epoch, checkpoint=Path(checkpoint) if checkpoint else None,
               log_path=Path(log_path) if log_path else None, resume=resume, dist=dist,
               data=records_fingerprint(data.records))
    return fen.eval(), ffgnn.eval()
