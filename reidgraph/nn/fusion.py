"""Test-time use of a trained FFGNN (the paper's §3.3, testing): FFGNN re-ranking and fused features.

For each query: its top-K gallery neighbors by FEN features form a graph of
``K + 1`` nodes; the FFGNN fuses them; the K neighbors are re-ordered by the
cosine distance between the query's fused feature and theirs. The gallery
beyond the top-K keeps its FEN order after them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import as_features, given_neighbors, int_in_range, same_dim
from ..graph import GraphSettings, iter_graph_batches, knn
from ..graph.cameras import graph_camids
from ..graph.neighbors import graph_neighbors
from ..ranking import HeadRanking
from .layer_products import fuse_l2, layer_tables

if TYPE_CHECKING:
    from ..graph import NeighborhoodDataset

# Graphs fused at once: from 8 to 64 took the same time within noise on a 2-core CPU at Market size; larger
# batches only hold more memory, and blocks above glibc's mmap threshold cost page faults at every batch.
BATCH = 8


@torch.no_grad()
def ffgnn_rerank(model: torch.nn.Module, query, gallery, settings: GraphSettings | None = None, *,
                 query_camids=None, gallery_camids=None, backend: str = "auto", neighbors=None,
                 batch_size: int = BATCH, progress: bool = False) -> HeadRanking:
    """Re-rank each query's top-K gallery neighbors with a trained FFGNN.

    Args:
        model: a trained :class:`~reidgraph.nn.FFGNN` (run in eval mode here),
            or :class:`~reidgraph.nn.TrainingFreeFusion`.
        query: ``[Q, D]`` FEN features; gallery: ``[G, D]`` FEN features
            (L2-normalised here, as in :func:`~reidgraph.graph.build_graphs`).
        settings: graph settings, the same as in training (paper's by default).
        query_camids, gallery_camids: ``[Q]`` / ``[G]`` camera ids, needed by
            camera-aware settings (``same_camera_weight < 1``).
        backend: kNN backend.
        neighbors: ``[Q, >= K]`` gallery indices of each query's nearest neighbors, best first
            (e.g. from :meth:`~reidgraph.graph.AnnIndex.search`); its first ``K`` columns are the
            graph's nodes. Default: exact :func:`~reidgraph.graph.knn` with ``backend``.
        batch_size: query graphs fused at once (memory ``batch_size (K+1)^2``).
        progress: show a progress bar.

    Returns:
        :class:`~reidgraph.ranking.HeadRanking`: ``index`` / ``distance`` ``[Q, K]`` of each re-ranked head,
        then the rest of the gallery in FEN order.
    """
    query, gallery, settings = _prepare(query, gallery, settings, batch_size)
    camids = graph_camids(settings, query_camids, gallery_camids, query.shape[0], gallery.shape[0])
    neighbors = (knn(query, gallery, settings.K, backend=backend)[1] if neighbors is None
                 else given_neighbors(neighbors, query.shape[0], gallery.shape[0], settings.K).to(query.device))
    # Filled in place: small per-batch results kept alive between the batches'
    # large freed blocks would fragment the heap and raise the peak with Q.
    index, distance = torch.empty_like(neighbors), torch.empty_like(neighbors, dtype=query.dtype)
    for rows, z in fused_graphs(model, query, gallery, neighbors, settings, batch_size, progress, *camids):
        dist = 1 - (z[:, 1:] @ z[:, :1].transpose(1, 2)).squeeze(2)
        # Stable: equal fused distances keep their FEN order.
        torch.sort(dist, dim=1, stable=True, out=(distance[rows], index[rows]))
        index[rows] = neighbors[rows].gather(1, index[rows])
    return HeadRanking(query, gallery, index, distance)


@torch.no_grad()
def fused_features(model: torch.nn.Module, anchors, candidates, settings: GraphSettings | None = None, *,
                   exclude=None, anchor_camids=None, candidate_camids=None, backend: str = "auto",
                   neighbors=None, batch_size: int = BATCH, progress: bool = False) -> Tensor:
    """Each anchor's fused feature in its own neighborhood graph: node 0 of the FFGNN output.

    A per-image fused representation, so that any method taking features (k-reciprocal, ECN, ...)
    can follow the FFGNN, as in the paper's Basel.+FFGNN+ECN (Table 2). Queries take their graph
    from the gallery; gallery items from the rest of the gallery (``exclude`` = their own index).

    Args:
        model: a trained :class:`~reidgraph.nn.FFGNN`.
        anchors: ``[A, D]`` features; candidates: ``[G, D]`` features.
        settings: graph settings, the same as in training.
        exclude: ``[A]`` candidate index to leave out of each anchor's graph (-1 for none), or ``"self"``.
        anchor_camids, candidate_camids: ``[A]`` / ``[G]`` camera ids (camera-aware settings).
        backend, neighbors, batch_size, progress: as in :func:`ffgnn_rerank` (given ``neighbors`` are used
            as they are: ``exclude`` applies to the search alone).

    Returns:
        ``[A, D]`` L2-normalised fused anchor features.

    Passing the same tensor as ``anchors`` and ``candidates`` (each gallery item in its graph over the rest of the
    gallery) lets an image's products by the layers' weights serve it as anchor and as neighbor.
    """
    same = anchors is candidates
    anchors, candidates, settings = _prepare(anchors, candidates, settings, batch_size)
    camids = graph_camids(settings, anchor_camids, candidate_camids, anchors.shape[0], candidates.shape[0],
                          "anchor", "candidate")
    neighbors = graph_neighbors(anchors, candidates, settings.K, neighbors, backend=backend, exclude=exclude)
    return _fused_anchors(model, anchors, candidates, neighbors, settings, batch_size, progress, camids, same)


@torch.no_grad()
def fused_anchors(model: torch.nn.Module, dataset: NeighborhoodDataset, *, batch_size: int = BATCH,
                  progress: bool = False) -> Tensor:
    """Each anchor's fused feature in its graph of ``dataset``: :func:`fused_features` over the dataset's anchors,
    candidates, cameras and settings, on its neighbor table (searched once, when the dataset was made).

    Args:
        model: a trained :class:`~reidgraph.nn.FFGNN`, or :class:`~reidgraph.nn.TrainingFreeFusion`.
        dataset: a whole :class:`~reidgraph.graph.NeighborhoodDataset` (not a slice of it); its graphs
            as built, without its ``transform``.
        batch_size, progress: as in :func:`ffgnn_rerank`.

    Returns:
        ``[A, D]`` L2-normalised fused anchor features, row ``i`` from graph ``i``: for one set, equal to
        ``fused_features(model, feats, feats, settings, exclude="self")``; with a gallery, to
        ``fused_features(model, feats, gallery, settings)`` (cameras passed as well).
    """
    if len(dataset) != dataset.len():
        raise ValueError(f"fused_anchors fuses every anchor, but this is a slice of {len(dataset)} of the "
                         f"dataset's {dataset.len()} graphs; pass the whole dataset and index the result")
    int_in_range("batch_size", batch_size, 1, 2**31)
    # fused_features' last step on the dataset's rows: already L2-normalised (normalising twice moves bits)
    return _fused_anchors(model, dataset.anchors, dataset.candidates, dataset.neighbors, dataset.settings,
                          batch_size, progress, (dataset.anchor_camids, dataset.candidate_camids),
                          dataset.candidates is dataset.anchors)


def _fused_anchors(model: torch.nn.Module, anchors: Tensor, candidates: Tensor, neighbors: Tensor,
                   settings: GraphSettings, batch_size: int, progress: bool, camids: tuple, same: bool) -> Tensor:
    """``[A, D]`` node 0 of each anchor's fused graph, from checked, L2-normalised features and ``[A, K]``
    neighbors."""
    fused = torch.empty_like(anchors)  # filled in place, as in ffgnn_rerank
    for rows, z in fused_graphs(model, anchors, candidates, neighbors, settings, batch_size, progress, *camids,
                                anchor_only=True, same=same):
        fused[rows] = z
    return fused


def _prepare(query, gallery, settings: GraphSettings | None, batch_size: int):
    """Checked, L2-normalised features (as in :func:`~reidgraph.graph.build_graphs`) and settings."""
    settings = settings or GraphSettings()
    query = F.normalize(as_features(query, "query"), dim=1)
    gallery = F.normalize(as_features(gallery, "gallery"), dim=1).to(query)
    same_dim(query, gallery)
    settings.check(gallery.shape[0])
    int_in_range("batch_size", batch_size, 1, 2**31)
    return query, gallery, settings


def fused_graphs(model: torch.nn.Module, query: Tensor, gallery: Tensor, neighbors: Tensor,
                 settings: GraphSettings, batch_size: int, progress: bool, query_camids: Tensor | None,
                 gallery_camids: Tensor | None, anchor_only: bool = False,
                 same: bool = False) -> Iterator[tuple[slice, Tensor]]:
    """``(rows, z)``: L2-normalised model outputs of consecutive batches of graphs, in eval mode: ``z [b, K+1, D]``,
    or node 0's ``[b, D]`` with ``anchor_only``. ``same``: ``query`` is ``gallery`` (row ``i`` the same image)."""
    # The dense path multiplies by W directly and would skip FFGNNConv's width check.
    channels = getattr(model, "channels", None)  # FFGNN has a width; TrainingFreeFusion has none
    if channels is not None and int(channels) != query.shape[1]:
        raise ValueError(f"model expects {channels}-d features but the features are {query.shape[1]}-d; "
                         "pass features from the FEN the model was trained on, or a model built with "
                         f"channels={query.shape[1]}")
    was_training = model.training
    model.eval()
    batches = iter_graph_batches(query, gallery, neighbors, settings, batch_size, progress, query_camids,
                                 gallery_camids)
    try:
        # A graph's nodes in one index space: the query rows, then the gallery rows (or the gallery alone).
        nodes = torch.cat([torch.arange(len(query), device=neighbors.device)[:, None],
                           neighbors if same else neighbors + len(query)], dim=1)
        needed, nodes = nodes.unique(return_inverse=True)
        if _products_pay(model, len(needed), *nodes.shape, query.shape[1], anchor_only,
                         budget=free_memory(query.device) // 2, itemsize=query.element_size()):
            images = (gallery if same else torch.cat([query, gallery]))[needed]
            convs = model.convs[:-1] if anchor_only else model.convs  # the anchor's last layer needs no table
            last = model.convs[-1].lin if anchor_only else None
            tables = [t.view(len(needed), -1) for t in layer_tables(convs, images)]
            del images
            # Gathered into buffers allocated once: fresh large blocks per batch cost page faults.
            buffers = [t.new_empty(batch_size * nodes.shape[1], t.shape[1]) for t in tables]
            for rows, x, s in batches:
                flat = nodes[rows].reshape(-1)
                gathered = [torch.index_select(t, 0, flat, out=b[:len(flat)]).view(len(x), -1, x.shape[2])
                            for t, b in zip(tables, buffers)]
                yield rows, fuse_l2(x, s, gathered, model.alpha, last)
            return
        # The first layer's x_j W depends only on the image, and a gallery image
        # recurs in many graphs: project every image once, not once per graph.
        query_xw, gallery_xw = model.project_first(query), model.project_first(gallery)
        for rows, x, s in batches:
            xw = torch.cat([query_xw[rows, None], gallery_xw[neighbors[rows]]], dim=1)
            yield rows, F.normalize(model.forward_dense(x, s, first_xw=xw, anchor_only=anchor_only), dim=-1)
    finally:
        model.train(was_training)


def _products_pay(model: torch.nn.Module, images: int, graphs: int, n: int, dim: int, anchor_only: bool = False,
                  budget: int | None = None, itemsize: int = 4) -> bool:
    """Whether :mod:`~reidgraph.nn.layer_products` computes ``graphs`` graphs of ``n`` nodes over ``images``
    distinct images in fewer multiply-adds than the direct path, with its tables (``2^L - 1`` of
    ``[images, dim]``, ``itemsize`` bytes a number) within ``budget`` bytes (``None``: any size); it applies to
    ``output="l2"`` FFGNNs only. With ``anchor_only`` both compute the last layer for node 0 alone (one product
    by ``W`` a graph)."""
    if getattr(model, "output", None) != "l2":
        return False
    full = model.num_layers - anchor_only  # layers computed for every node
    if budget is not None and (2 ** full - 1) * images * dim * itemsize > budget:
        return False
    direct = images * dim * dim + graphs * (max(full - 1, 0) * n * dim * dim + full * n * n * dim)
    products = (2 ** full - 1) * (images * dim * dim + graphs * n * n * dim)
    return products < direct


def free_memory(device: torch.device, meminfo: str | None = None) -> int:
    """Bytes still free on ``device``: CUDA's free memory, or the host's available memory (Linux's
    ``MemAvailable``, read from ``meminfo``, ``/proc/meminfo``'s text, by default); ``2**62`` where the host
    does not say."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        lines = (Path("/proc/meminfo").read_text() if meminfo is None else meminfo).splitlines()
    except OSError:
        return 2**62
    return next((int(line.split()[1]) * 1024 for line in lines if line.startswith("MemAvailable:")), 2**62)
