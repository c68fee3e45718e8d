"""Stage 2 (paper §3.3 "Training Stage", steps 2-4): train the FFGNN on neighborhood graphs of fixed features.

Each epoch draws a fresh fifth of the training images as anchors; each anchor's
top-K neighbors among the other four fifths make its graph. Mini-batches of
graphs are fused with the FFGNN and scored by the recipe's losses.

Two recipes (:func:`recipe`):

- ``"paper"``: the paper's. Graphs as in its §3 (λ=0.7, no camera ids), an
  FFGNN with BatchNorm + ReLU, one graph of K+1 nodes per mini-batch, softmax
  (no label smoothing) + batch-hard triplet + verification summed over pairs
  (eqs. 13-15), Adam at 3e-4 divided by 10 after 5 epochs, 10 epochs. The paper
  leaves the epoch count, the weight decay (5e-4 here) and the triplet margin
  (0.3) open. Its Table 1 ablations are :data:`ABLATIONS`.
- ``"default"``: ours, chosen on identities held out inside the train split
  (``benchmarks/recipe.py``). Camera-aware graphs (same-camera similarity ×0,
  λ=0.3); every W starts at the identity and each layer's output is
  L2-normalised, so the untrained network *is* training-free fusion and
  training starts from it; the loss is each node's cross-camera ranking of its
  graph (:func:`~reidgraph.losses.cross_camera_list_loss`); 8 graphs per step,
  Adam at 3e-4 without weight decay, divided by 10 every 2 epochs, 4 epochs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .._checks import in_unit_interval, int_in_range
from ..data.samplers import neighborhood_split, random_graph_neighbors
from ..debias import Debias, debias_set
from ..features import FeatureSet
from ..graph import GraphSettings, knn
from ..graph.batches import iter_graph_batches
from ..graph.settings import RECIPE
from ..losses import batch_hard_triplet_loss, cross_camera_list_loss, softmax_loss, verification_loss
from ..checkpoint import load_checkpoint, stage_config
from .loop import OptimConfig, run_epochs, tensor_fingerprint, train_steps

if TYPE_CHECKING:  # the network imports PyG: at run time, only where one is built
    from ..nn import FFGNN

LOSSES = ("softmax", "triplet", "verification", "list")


@dataclass
class GNNTrainConfig(OptimConfig):
    """Stage-2 settings; the defaults are the ``"default"`` recipe's.

    Attributes:
        graphs_per_batch: graphs per optimiser step.
        anchor_fraction: share of the training images that are anchors each epoch.
        alpha: each layer's mixing weight α of a node's own features and its message (eq. 12).
        num_layers, output, init: the FFGNN's shape (see :class:`~reidgraph.nn.FFGNN`).
        graphs: ``"knn"`` (the method) or ``"random"`` (ablation ``rdm``: P x K-style
            random batches of ``images_per_id`` images per identity).
        losses: any of :data:`LOSSES`: ``softmax`` (eq. 13, a linear identity
            classifier on the fused features), ``triplet`` (eq. 14),
            ``verification`` (eq. 15, reduced by ``verification``: ``"sum"`` as
            the paper writes it, or ``"mean"``), ``list`` (each node's
            cross-camera ranking inside its graph, at ``temperature``).
        preset, ablation: the recipe the settings came from, recorded with the model.
    """

    epochs: int = 4
    lr_step: int = 2
    weight_decay: float = 0.0
    graphs_per_batch: int = 8
    anchor_fraction: float = 0.2
    num_layers: int = 3
    alpha: float = 0.3
    output: str = "l2"
    init: str = "identity"
    graphs: str = "knn"
    images_per_id: int = 4
    losses: tuple[str, ...] = ("list",)
    verification: str = "mean"
    temperature: float = 0.05
    preset: str | None = "default"
    ablation: str | None = None

    def check(self) -> None:
        from ..nn.ffgnn import INITS, OUTPUTS

        super().check()
        int_in_range("graphs_per_batch", self.graphs_per_batch, 1, 10**6)
        in_unit_interval("anchor_fraction", self.anchor_fraction)
        in_unit_interval("alpha", self.alpha)
        int_in_range("images_per_id", self.images_per_id, 1, 10**6)
        for name, value, choices in (("graphs", self.graphs, ("knn", "random")), ("output", self.output, OUTPUTS),
                                     ("init", self.init, INITS), ("verification", self.verification, ("mean", "sum"))):
            if value not in choices:
                raise ValueError(f"{name}={value!r} is unknown; choose one of {', '.join(choices)}")
        unknown = [loss for loss in self.losses if loss not in LOSSES]
        if unknown or not self.losses:
            raise ValueError(f"losses={tuple(self.losses)!r}: choose one or more of {', '.join(LOSSES)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature!r} must be positive, e.g. 0.05")

    @property
    def needs_cameras(self) -> bool:
        return "list" in self.losses


PAPER = GNNTrainConfig(epochs=10, lr=3e-4, lr_step=5, weight_decay=5e-4, label_smoothing=0.0, graphs_per_batch=1,
                       output="batchnorm", init="random", losses=("softmax", "triplet", "verification"),
                       verification="sum", preset="paper")
PRESETS = {"default": (RECIPE, GNNTrainConfig()),
           "paper": (GraphSettings(), PAPER)}
# The paper's Table 1 rows, each a change to its recipe.
ABLATIONS = {
    "ori_w_mask": ("cosine edges, top-tau mask", lambda s, c: (replace(s, edges="cosine"), c)),
    "jnt_wo_mask": ("joint edges, no top-tau mask", lambda s, c: (replace(s, mask=False), c)),
    "rdm": ("P x K random graphs", lambda s, c: (s, replace(c, graphs="random"))),
    "sft": ("softmax loss only", lambda s, c: (s, replace(c, losses=("softmax",)))),
    "sft+tri": ("softmax + triplet losses", lambda s, c: (s, replace(c, losses=("softmax", "triplet")))),
}


def recipe(preset: str = "default", ablation: str | None = None) -> tuple[GraphSettings, GNNTrainConfig]:
    """The graph settings and training settings of a preset, with one of the paper's ablations applied.

    Raises a ``ValueError`` for an unknown preset or ablation, or for an
    ablation on the ``"default"`` recipe (each ablation is a change to the
    paper's recipe, Table 1).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    settings, config = PRESETS[preset]
    if ablation is None:
        return settings, replace(config)
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation {ablation!r} is unknown; choose one of {', '.join(ABLATIONS)}")
    if preset != "paper":
        raise ValueError(f"ablation {ablation} changes the paper's recipe (its Table 1); use it with preset 'paper'")
    settings, config = ABLATIONS[ablation][1](settings, config)
    return settings, replace(config, ablation=ablation)


def graph_losses(z: torch.Tensor, labels: torch.Tensor, camids: torch.Tensor, classifier: torch.nn.Module | None,
                 config: GNNTrainConfig) -> dict:
    """The losses of ``config`` on the fused features ``z [B, n, D]`` of ``B`` graphs (labels, cameras ``[B, n]``)."""
    flat, targets = z.reshape(-1, z.shape[-1]), labels.reshape(-1)
    terms = {"softmax": lambda: softmax_loss(classifier(flat), targets, config.label_smoothing),
             "triplet": lambda: batch_hard_triplet_loss(flat, targets, config.margin),
             "verification": lambda: verification_loss(flat, targets, config.verification),
             "list": lambda: cross_camera_list_loss(z, labels, camids, config.temperature)}
    return {name: terms[name]() for name in config.losses}


def check_train_set(train: FeatureSet, settings: GraphSettings, config: GNNTrainConfig) -> None:
    """Refuse, in one line, training features the recipe cannot learn from."""
    if train.pids.unique().numel() < 2:
        raise ValueError("the train features hold a single identity; the losses need at least two "
                         "(pass features with identity labels in pids)")
    if (settings.camera_aware or config.needs_cameras) and train.camids.unique().numel() < 2:
        raise ValueError("the train features hold a single camera id, but this recipe uses cameras (camera-aware "
                         "graphs or the cross-camera list loss); pass real camids, or use --preset paper")


def train_ffgnn(train: FeatureSet, settings: GraphSettings | None = None,
                config: GNNTrainConfig | None = None, *, debias: Debias | None = None,
                device: str | torch.device = "cpu", log_path: str | Path | None = None,
                checkpoint: str | Path | None = None, resume: bool = True, progress: bool = True) -> FFGNN:
    """Train an FFGNN on the graphs of ``train``'s features (the FEN stays fixed).

    Args:
        train: training features with identity labels (and camera ids). Each epoch draws its own anchors
            and searches their graphs (§3.3), so a :class:`~reidgraph.graph.NeighborhoodDataset`'s fixed
            graphs are not taken: pass the features it was made from, and its ``settings``.
        settings, config: graph and training settings; both default to the
            ``"default"`` recipe (see :func:`recipe`).
        debias: train on features de-biased per camera with the train set's own statistics
            (:func:`~reidgraph.debias.debias_set`); the model file stores the stage, and re-ranking
            with the model de-biases test features with their gallery's statistics. ``None``: raw features.
        device: where to train.
        log_path: optional JSON-lines file, one record per epoch.
        checkpoint: optional file for the state after each epoch; an existing
            one is resumed from when ``resume``.
        progress: show progress bars.

    Returns:
        The trained :class:`~reidgraph.nn.FFGNN`, in eval mode.
    """
    from ..nn import FFGNN

    if not isinstance(train, FeatureSet):
        raise TypeError(f"train_ffgnn takes the train FeatureSet, got {type(train).__name__}; each epoch draws its "
                        "own anchors and graphs, so pass the features (and the settings) a dataset was made from")
    default_settings, default_config = recipe()
    settings, config = settings or default_settings, config or default_config
    config.check()
    settings.check(len(neighborhood_split(len(train), config.anchor_fraction)[1]))
    check_train_set(train, settings, config)
    if debias is not None:
        debias.check()
        if train.camids.unique().numel() < 2:
            raise ValueError("de-biasing needs the train features' camera ids, but they hold a single camera; "
                             "pass real camids, or train without --debias")
        feats = debias_set(train.feats, train.camids, ridge=debias.ridge, min_images=debias.min_images).to(device)
    else:
        feats = F.normalize(train.feats, dim=1).to(device)
    labels, targets = train.pids.unique(return_inverse=True)
    targets, camids = targets.to(device), train.camids.to(device)
    torch.manual_seed(config.seed)
    model = FFGNN(feats.shape[1], config.num_layers, config.alpha, config.output, config.init).to(device)
    modules = {"model": model}
    if "softmax" in config.losses:
        modules["classifier"] = torch.nn.Linear(feats.shape[1], len(labels)).to(device)
    optimizer, schedule = config.optimizer([p for m in modules.values() for p in m.parameters()])

    def train_epoch(epoch: int) -> dict:
        anchors, rest = neighborhood_split(len(train), config.anchor_fraction, seed=config.seed, epoch=epoch)
        anchors, rest = anchors.to(device), rest.to(device)
        if config.graphs == "random":
            neighbors = random_graph_neighbors(targets[anchors], targets[rest], settings.K, config.images_per_id,
                                               seed=config.seed * 7919 + epoch).to(device)
        else:
            _, neighbors = knn(feats[anchors], feats[rest], settings.K)
        nodes = torch.cat([anchors[:, None], rest[neighbors]], dim=1)  # [A, K+1] training-set rows, anchor first
        model.train()
        # Anchors come in random order, so consecutive graphs make shuffled mini-batches.
        batches = iter_graph_batches(feats[anchors], feats[rest], neighbors, settings, config.graphs_per_batch,
                                     False, camids[anchors], camids[rest])

        def losses(batch) -> dict:
            rows, x, s = batch
            return graph_losses(model.forward_dense(x, s), targets[nodes[rows]], camids[nodes[rows]],
                                modules.get("classifier"), config)

        return train_steps(batches, losses, optimizer, desc=f"ffgnn epoch {epoch + 1}/{config.epochs}",
                           total=-(-len(anchors) // config.graphs_per_batch), progress=progress)

    run_epochs(kind="ffgnn", epochs=config.epochs, modules=modules, optimizer=optimizer, scheduler=schedule,
               config=stage_config(config, graph=settings, channels=feats.shape[1], debias=debias),
               train_epoch=train_epoch, checkpoint=Path(checkpoint) if checkpoint else None,
               log_path=Path(log_path) if log_path else None, resume=resume,
               data=tensor_fingerprint("features", train.feats, train.pids, train.camids))
    return model.eval()


def load_graph_classifier(path: str | Path) -> torch.nn.Linear | None:
    """The identity classifier on fused features saved with a stage-2 model (``None`` if its losses had no softmax)."""
    weights = load_checkpoint(path, "ffgnn")["modules"].get("classifier")
    if weights is None:
        return None
    classes, channels = weights["weight"].shape
    classifier = torch.nn.Linear(channels, classes)
    classifier.load_state_dict(weights)
    return classifier
