"""Stage 2 of method.md §5: train the FFGNN on neighbourhood graphs of fixed features.

Each epoch draws a fresh fifth of the training images as anchors; each anchor's
top-K neighbours among the other four fifths make its graph. Every node of a
mini-batch of graphs is scored with softmax + batch-hard triplet +
verification losses (eqs. 13-15).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from .._checks import in_unit_interval, int_in_range
from ..features import FeatureSet
from ..graph import GraphSettings, build_graphs
from ..losses import batch_hard_triplet_loss, softmax_loss, verification_loss
from ..nn import FFGNN


@dataclass
class GNNTrainConfig:
    """Stage-2 settings. Adam; the learning rate drops ÷10 every ``lr_step`` epochs (method.md §5)."""

    epochs: int = 3
    lr: float = 3e-4
    lr_step: int = 5
    weight_decay: float = 5e-4
    graphs_per_batch: int = 1
    anchor_fraction: float = 0.2
    margin: float = 0.3
    label_smoothing: float = 0.1
    num_layers: int = 3
    alpha: float = 0.3
    seed: int = 0

    def check(self) -> None:
        int_in_range("epochs", self.epochs, 1, 10**6)
        int_in_range("lr_step", self.lr_step, 1, 10**6)
        int_in_range("graphs_per_batch", self.graphs_per_batch, 1, 10**6)
        in_unit_interval("anchor_fraction", self.anchor_fraction)
        in_unit_interval("alpha", self.alpha)


def train_ffgnn(train: FeatureSet, settings: GraphSettings | None = None, config: GNNTrainConfig | None = None,
                *, device: str | torch.device = "cpu", log_path: str | Path | None = None,
                progress: bool = True) -> FFGNN:
    """Train an FFGNN on the graphs of ``train``'s features (the FEN stays fixed).

    Args:
        train: training features with identity labels.
        settings: graph settings (paper defaults).
        config: optimisation settings.
        device: where to train.
        log_path: optional JSON-lines file, one record per epoch.
        progress: show progress bars.

    Returns:
        The trained :class:`~reidgraph.nn.FFGNN`, in eval mode.
    """
    settings = settings or GraphSettings()
    config = config or GNNTrainConfig()
    config.check()
    num_anchors = max(1, round(config.anchor_fraction * len(train)))
    settings.check(len(train) - num_anchors)
    labels, targets = train.pids.unique(return_inverse=True)
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)

    model = FFGNN(train.feats.shape[1], config.num_layers, config.alpha).to(device)
    classifier = torch.nn.Linear(train.feats.shape[1], len(labels)).to(device)
    params = list(model.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=0.1)
    log = open(log_path, "a") if log_path else None
    try:
        for epoch in range(config.epochs):
            perm = torch.randperm(len(train), generator=gen)
            anchors, rest = perm[:num_anchors], perm[num_anchors:]
            graphs = build_graphs(train.feats[anchors], train.feats[rest], settings,
                                  anchor_labels=targets[anchors], candidate_labels=targets[rest], progress=progress)
            loader = DataLoader(graphs, batch_size=config.graphs_per_batch, shuffle=True,
                                generator=torch.Generator().manual_seed(config.seed + epoch))
            model.train()
            totals = {"softmax": 0.0, "triplet": 0.0, "verification": 0.0}
            bar = tqdm(loader, desc=f"ffgnn epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
            for batch in bar:
                batch = batch.to(device)
                z = model(batch.x, batch.edge_index, batch.edge_weight)
                parts = {"softmax": softmax_loss(classifier(z), batch.y, config.label_smoothing),
                         "triplet": batch_hard_triplet_loss(z, batch.y, config.margin),
                         "verification": verification_loss(z, batch.y)}
                loss = sum(parts.values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                for key, value in parts.items():
                    totals[key] += value.item() / len(loader)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            schedule.step()
            if log:
                log.write(json.dumps({"stage": "ffgnn", "epoch": epoch + 1, **totals,
                                      "lr": optimizer.param_groups[0]["lr"]}) + "\n")
                log.flush()
    finally:
        if log:
            log.close()
    return model.eval()


def config_dict(settings: GraphSettings, config: GNNTrainConfig) -> dict:
    """Everything needed to reproduce a stage-2 run, for logs and checkpoints."""
    return {"graph": settings.as_dict(), "train": asdict(config)}
