"""Generated ReID-like features: identities seen through biased cameras.

A feature is ``x = mu_pid + beta_cam + gamma_(pid, cam) + noise``: an identity
centre, a camera offset shared by everyone that camera sees (background,
light), a per-identity-per-camera offset (pose, viewpoint), and per-image
noise. The camera offset is what makes same-camera neighbors crowd the top of
a ranking, as in real ReID features. Identities, camera offsets and views vary
in different but overlapping subspaces (``id_rank`` / ``nuisance_rank``
channels), so a model trained on some identities can learn what to ignore on
others, as a FEN's features allow in practice.
"""
from __future__ import annotations

import torch

from .._checks import int_in_range
from ..features import FeatureSet


def synthetic_features(num_ids: int = 200, images_per_id: int = 10, num_cams: int = 4, dim: int = 128,
                       camera_bias: float = 0.8, view_spread: float = 0.7, noise: float = 0.6,
                       seed: int = 0, first_pid: int = 1) -> FeatureSet:
    """Features of ``num_ids`` identities, each with ``images_per_id`` images over its cameras.

    Every identity is seen by at least two cameras (so a query has a
    cross-camera match); its images are spread round-robin over a random choice
    of ``min(num_cams, images_per_id)`` cameras. The world (cameras,
    subspaces) depends on ``seed`` only, so two calls with the same seed and
    different ``first_pid`` give disjoint identities seen by the same cameras:
    a train set and a test set.

    Args:
        camera_bias, view_spread, noise: standard deviations of the camera,
            view and image offsets, relative to a unit identity spread.
        seed: the world's seed; identities come from ``seed`` and ``first_pid``.
        first_pid: pid of the first identity (ids are consecutive).

    Returns:
        A :class:`FeatureSet` of ``num_ids * images_per_id`` rows, no split.
    """
    int_in_range("num_ids", num_ids, 1, 10**7)
    int_in_range("images_per_id", images_per_id, 2, 10**4)
    int_in_range("num_cams", num_cams, 2, 10**3)
    int_in_range("dim", dim, 4, 10**5)
    world = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=world))[0]
    id_space, nuisance_space = basis[:, : dim // 2], basis[:, dim // 4:]
    cam_offsets = camera_bias * torch.randn(num_cams, nuisance_space.shape[1], generator=world) @ nuisance_space.T

    g = torch.Generator().manual_seed(seed * 1_000_003 + first_pid)
    centres = torch.randn(num_ids, id_space.shape[1], generator=g) @ id_space.T * (2 ** 0.5)
    seen_by = torch.rand(num_ids, num_cams, generator=g).argsort(dim=1)[:, :min(num_cams, images_per_id)]
    cams = seen_by[:, torch.arange(images_per_id) % seen_by.shape[1]].flatten()
    pids = torch.arange(num_ids).repeat_interleave(images_per_id)
    views = view_spread * torch.randn(num_ids, num_cams, nuisance_space.shape[1], generator=g) @ nuisance_space.T
    noise = noise * torch.randn(pids.numel(), dim, generator=g)
    feats = centres[pids] + cam_offsets[cams] + views[pids, cams] + noise
    return FeatureSet(feats, pids + first_pid, cams)
