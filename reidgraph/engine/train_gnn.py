"""Stage 2 of method.md §5: train the FFGNN on neighbourhood graphs of fixed features.

Each epoch draws a fresh fifth of the training images as anchors; each anchor's
top-K neighbours among the other four fifths make its graph. Every node of a
mini-batch of graphs is scored with softmax + batch-hard triplet +
verification losses (eqs. 13-15).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from .._checks import in_unit_interval, int_in_range
from ..data.samplers import neighbourhood_split, random_graph_neighbors
from ..features import FeatureSet
from ..graph import GraphSettings, build_graphs
from ..losses import batch_hard_triplet_loss, softmax_loss, verification_loss
from ..nn import FFGNN
from .checkpoint import load_checkpoint
from .loop import OptimConfig, optimise, run_epochs


@dataclass
class GNNTrainConfig(OptimConfig):
    """Stage-2 settings: graphs per step, the anchor share of each epoch, the network's shape."""

    graphs_per_batch: int = 1
    anchor_fraction: float = 0.2
    num_layers: int = 3
    alpha: float = 0.3
    graphs: str = "knn"  # "random": the paper's rdm ablation, K random images per anchor

    def check(self) -> None:
        super().check()
        int_in_range("graphs_per_batch", self.graphs_per_batch, 1, 10**6)
        in_unit_interval("anchor_fraction", self.anchor_fraction)
        in_unit_interval("alpha", self.alpha)
        if self.graphs not in ("knn", "random"):
            raise ValueError(f"graphs={self.graphs!r} is unknown; choose 'knn' (the method) or 'random' (ablation rdm)")


def graph_losses(z: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, config: GNNTrainConfig) -> dict:
    """The three losses of eqs. 13-15 on a mini-batch's fused node features ``z [N, D]``."""
    return {"softmax": softmax_loss(logits, targets, config.label_smoothing),
            "triplet": batch_hard_triplet_loss(z, targets, config.margin),
            "verification": verification_loss(z, targets)}


def train_ffgnn(train: FeatureSet, settings: GraphSettings | None = None, config: GNNTrainConfig | None = None,
                *, device: str | torch.device = "cpu", log_path: str | Path | None = None,
                checkpoint: str | Path | None = None, resume: bool = True, progress: bool = True) -> FFGNN:
    """Train an FFGNN on the graphs of ``train``'s features (the FEN stays fixed).

    Args:
        train: training features with identity labels.
        settings: graph settings (paper defaults).
        config: optimisation settings.
        device: where to train.
        log_path: optional JSON-lines file, one record per epoch.
        checkpoint: optional file for the state after each epoch; an existing
            one is resumed from when ``resume``.
        progress: show progress bars.

    Returns:
        The trained :class:`~reidgraph.nn.FFGNN`, in eval mode.
    """
    settings = settings or GraphSettings()
    config = config or GNNTrainConfig()
    config.check()
    settings.check(len(neighbourhood_split(len(train), config.anchor_fraction)[1]))
    labels, targets = train.pids.unique(return_inverse=True)
    torch.manual_seed(config.seed)
    model = FFGNN(train.feats.shape[1], config.num_layers, config.alpha).to(device)
    classifier = torch.nn.Linear(train.feats.shape[1], len(labels)).to(device)
    optimizer, schedule = config.optimizer([*model.parameters(), *classifier.parameters()])

    def train_epoch(epoch: int) -> dict:
        anchors, rest = neighbourhood_split(len(train), config.anchor_fraction, seed=config.seed, epoch=epoch)
        chosen = (random_graph_neighbors(len(anchors), len(rest), settings.K, seed=config.seed * 7919 + epoch)
                  if config.graphs == "random" else None)
        graphs = build_graphs(train.feats[anchors], train.feats[rest], settings, neighbors=chosen,
                              anchor_labels=targets[anchors], candidate_labels=targets[rest],
                              anchor_camids=train.camids[anchors], candidate_camids=train.camids[rest],
                              progress=progress)
        loader = DataLoader(graphs, batch_size=config.graphs_per_batch, shuffle=True,
                            generator=torch.Generator().manual_seed(config.seed + epoch))
        model.train()
        totals: dict[str, float] = {}
        bar = tqdm(loader, desc=f"ffgnn epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for batch in bar:
            batch = batch.to(device)
            z = model(batch.x, batch.edge_index, batch.edge_weight)
            optimise(optimizer, graph_losses(z, classifier(z), batch.y, config), totals, len(loader), bar)
        return totals

    run_epochs(kind="ffgnn", epochs=config.epochs, modules={"model": model, "classifier": classifier},
               optimizer=optimizer, scheduler=schedule,
               config={**config_dict(settings, config), "channels": train.feats.shape[1]},
               train_epoch=train_epoch, checkpoint=Path(checkpoint) if checkpoint else None,
               log_path=Path(log_path) if log_path else None, resume=resume)
    return model.eval()


def config_dict(settings: GraphSettings, config: GNNTrainConfig) -> dict:
    """Everything needed to reproduce a stage-2 run, flat, for logs and checkpoints."""
    return {**{f"graph.{k}": v for k, v in settings.as_dict().items()},
            **{f"train.{k}": v for k, v in asdict(config).items() if k != "epochs"}, "epochs": config.epochs}


def load_ffgnn(path: str | Path) -> tuple[FFGNN, GraphSettings]:
    """The trained FFGNN (eval mode) and its graph settings from a stage-2 checkpoint."""
    state = load_checkpoint(path, "ffgnn")
    cfg = state["config"]
    model = FFGNN(cfg["channels"], cfg["train.num_layers"], cfg["train.alpha"])
    model.load_state_dict(state["modules"]["model"])
    settings = GraphSettings(**{k.removeprefix("graph."): v for k, v in cfg.items() if k.startswith("graph.")})
    return model.eval(), settings
