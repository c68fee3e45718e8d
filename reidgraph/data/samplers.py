"""Samplers: P x K identity batches for the FEN, anchor/gallery splits and random graphs for the FFGNN.

All randomness is seeded explicitly; the same arguments always give the same result.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import int_in_range

_MAX = 2**62


def _rng(*seeds: int) -> np.random.Generator:
    return np.random.default_rng([int(s) for s in seeds])


class PKSampler(torch.utils.data.Sampler):
    """Batch sampler of identity-balanced batches: ``P`` identities, ``images_per_id`` images each.

    Pass it as ``DataLoader(dataset, batch_sampler=PKSampler(pids))``. Each epoch
    shuffles the identities and cuts them into groups of ``P``, so every identity
    appears about once per epoch (the last group is completed with other,
    randomly drawn identities). An identity with fewer than ``images_per_id`` images is
    sampled with replacement, so even single-image identities are used.

    With ``world_size > 1`` every rank builds the same epoch and takes every
    ``world_size``-th batch starting at ``rank``; the epoch is padded with extra
    random batches so all ranks get the same number and DDP stays in step.

    Args:
        pids (sequence): identity label of each dataset item (ints or strings), ``[N]``.
        P (int, optional): identities per batch, at least 2 (the triplet loss needs
            negatives). (default: ``16``)
        images_per_id (int, optional): images per identity. (default: ``4``)
        seed (int, optional): base seed; combined with the epoch. (default: ``0``)
        rank (int, optional): this process's rank. (default: ``0``)
        world_size (int, optional): number of processes. (default: ``1``)

    Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``;
    otherwise every epoch repeats the same batches.
    """

    def __init__(self, pids: Sequence, P: int = 16, images_per_id: int = 4, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        labels = np.asarray(pids.cpu() if isinstance(pids, Tensor) else pids)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(f"pids has shape {labels.shape}; pass one identity label per dataset item")
        ids, inverse = np.unique(labels, return_inverse=True)
        int_in_range("P", P, 2, _MAX, "each batch needs at least 2 identities for triplet negatives")
        if len(ids) < P:
            raise ValueError(f"pids hold only {len(ids)} distinct identities but P={P}; "
                             f"pass P <= {len(ids)} or a dataset with more identities")
        int_in_range("images_per_id", images_per_id, 1, _MAX)
        int_in_range("seed", seed, 0, _MAX)
        int_in_range("world_size", world_size, 1, _MAX)
        int_in_range("rank", rank, 0, world_size - 1, f"world_size={world_size}")
        self.P, self.images_per_id, self.seed, self.rank, self.world_size = P, images_per_id, seed, rank, world_size
        order = np.argsort(inverse, kind="stable")
        self.items = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        self.num_ids = len(ids)
        self.epoch = 0
        self.num_batches = math.ceil(math.ceil(self.num_ids / P) / world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch``; every rank must call it with the same value."""
        self.epoch = int_in_range("epoch", epoch, 0, _MAX)

    def epoch_batches(self) -> list[list[int]]:
        """All ranks' batches of this epoch: ``len(self) * world_size`` lists of ``P * images_per_id`` indices."""
        rng = _rng(self.seed, self.epoch)
        groups = [list(g) for g in np.array_split(rng.permutation(self.num_ids),
                                                  range(self.P, self.num_ids, self.P))]
        if len(groups[-1]) < self.P:
            last = groups[-1]
            others = np.setdiff1d(np.arange(self.num_ids), last)
            last += list(rng.choice(others, self.P - len(last), replace=False))
        while len(groups) < self.num_batches * self.world_size:
            groups.append(list(rng.choice(self.num_ids, self.P, replace=False)))
        return [[int(i) for pid in group for i in self._pick(rng, self.items[pid])] for group in groups]

    def _pick(self, rng: np.random.Generator, items: np.ndarray) -> np.ndarray:
        if len(items) >= self.images_per_id:
            return rng.choice(items, self.images_per_id, replace=False)
        # All images of a small identity, topped up with repeats, so none is wasted.
        return np.concatenate([rng.permutation(items), rng.choice(items, self.images_per_id - len(items))])

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.epoch_batches()[self.rank::self.world_size])

    def __len__(self) -> int:
        return self.num_batches

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(ids={self.num_ids}, P={self.P}, images_per_id={self.images_per_id}, "
                f"rank={self.rank}, world_size={self.world_size})")


def neighborhood_split(num_items: int, fraction: float = 0.2, seed: int = 0,
                        epoch: int = 0) -> tuple[Tensor, Tensor]:
    """Split the training images into graph anchors and their gallery (paper §3.3 "Training Stage", second step).

    ``round(fraction * num_items)`` items (at least 1, at most ``num_items - 1``)
    become anchors (the paper's queries, N/5); the rest are the gallery their
    top-K neighbors are searched in. A new split per epoch, deterministic in
    ``(seed, epoch)``.

    Args:
        num_items (int): number of training images ``N``, at least 2.
        fraction (float, optional): share of anchors, in ``(0, 1)``. (default: ``0.2``)
        seed (int, optional): base seed. (default: ``0``)
        epoch (int, optional): epoch number, combined with ``seed``. (default: ``0``)

    Returns:
        ``(anchors, rest)``: int64 tensors of indices in ``[0, N)``, disjoint and
        together covering all items; ``anchors`` in random order (iterate it
        directly), ``rest`` ascending.
    """
    int_in_range("num_items", num_items, 2, _MAX, "an anchor needs a gallery of at least one other item")
    if not (isinstance(fraction, (int, float)) and 0.0 < float(fraction) < 1.0):
        raise ValueError(f"fraction={fraction!r} is outside (0, 1); pass the share of items used as anchors, e.g. 0.2")
    int_in_range("seed", seed, 0, _MAX)
    int_in_range("epoch", epoch, 0, _MAX)
    num_anchors = min(max(round(fraction * num_items), 1), num_items - 1)
    perm = torch.from_numpy(_rng(seed, epoch).permutation(num_items))
    return perm[:num_anchors].clone(), perm[num_anchors:].sort().values


def random_graph_neighbors(anchor_pids, candidate_pids, K: int, images_per_id: int = 4, seed: int = 0) -> Tensor:
    """Graph nodes for the paper's ``rdm`` ablation (Table 1): a P x K-style random batch per anchor.

    The paper trains ``rdm`` "similar to the training of FEN", "with randomly
    selected images": each anchor's graph holds, instead of its K nearest
    neighbors, ``images_per_id - 1`` other images of its own identity and
    ``images_per_id`` images of each of randomly drawn other identities,
    until there are ``K`` (topped up with random other candidates when the
    identities run out). Positives and negatives are then present in every
    graph, as in an FEN batch, but the graph says nothing about which images
    look alike. The result stands in for a kNN's indices.

    Args:
        anchor_pids: ``[Q]`` identity of each anchor.
        candidate_pids: ``[M]`` identity of each candidate (anchors are not among them).
        K (int): nodes per anchor besides itself, ``1 <= K <= M``.
        images_per_id (int, optional): images per identity. (default: ``4``)
        seed (int, optional): seed. (default: ``0``)

    Returns:
        ``[Q, K]`` int64 candidate indices, distinct within each row.
    """
    anchor_pids = np.asarray(torch.as_tensor(anchor_pids).cpu())
    candidate_pids = np.asarray(torch.as_tensor(candidate_pids).cpu())
    int_in_range("num_anchors", anchor_pids.size, 1, _MAX)
    int_in_range("num_candidates", candidate_pids.size, 1, _MAX)
    int_in_range("K", K, 1, candidate_pids.size, f"each anchor needs K distinct candidates out of {candidate_pids.size}")
    int_in_range("images_per_id", images_per_id, 1, _MAX)
    int_in_range("seed", seed, 0, _MAX)
    ids, inverse = np.unique(candidate_pids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    items = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
    position = {int(pid): i for i, pid in enumerate(ids.tolist())}
    rng = _rng(seed)
    rows = []
    for pid in anchor_pids.tolist():  # one row at a time: memory O(Q * K), never O(Q * M)
        own = position.get(int(pid))
        others = rng.permutation(len(ids))
        groups = ([own] if own is not None else []) + [i for i in others.tolist() if i != own]
        chosen: list[int] = []
        for group in groups:
            take = min(images_per_id - (group == own), len(items[group]), K - len(chosen))
            chosen += rng.choice(items[group], take, replace=False).tolist()
            if len(chosen) == K:
                break
        if len(chosen) < K:
            rest = np.setdiff1d(np.arange(candidate_pids.size), chosen)
            chosen += rng.choice(rest, K - len(chosen), replace=False).tolist()
        rows.append(chosen)
    return torch.tensor(rows, dtype=torch.int64)
