r"""Per-camera de-biasing of ReID features: GCRV's PVG step (Zhang et al., IEEE TMM 2023), a stage any
pipeline can start with.

Each camera ``c`` leaves its mark on every feature it produces: a shared offset and a few dominant directions.
PVG estimates both from a reference set (the gallery at test time, the train file when training) and removes
them. With ``X_c`` the ``[n_c, D]`` L2-normalised reference features of camera ``c`` and
``mu_c`` their mean,

.. math::
    P_c = (X_c^\top X_c + n_c \lambda I)^{-1}, \qquad
    \hat x = \frac{P_c (x - \mu_c)}{\lVert P_c (x - \mu_c) \rVert}

for every feature ``x`` (L2-normalised first) seen by camera ``c``; ``lambda = 10`` (``ridge``) as in the
authors' Market-1501 config (``PVG.LA``), statistics per camera (``STATICS_LEVEL: intra_camera``),
operation ``P_neg``. ``X_c`` is not centred before ``X_c^T X_c``, as in their ``compute_P2``.

**Small and unseen cameras.** A camera with fewer than ``min_images`` reference images (with one image,
``x - mu_c`` is zero for that image) and a camera absent from the reference set (a query camera the gallery
never saw) use the statistics of the whole reference set instead: the authors' ``STATICS_LEVEL: all``.
(The authors' code has no such rule: one image gives a NaN feature, an unseen camera a ``KeyError``.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import as_features, camera_ids, int_in_range, same_dim

RIDGE = 10.0
# Reference images a camera needs for statistics of its own (chosen on held-out train ids: benchmarks/debias_min.py).
MIN_IMAGES = 20


@dataclass(frozen=True)
class Debias:
    """The de-biasing stage's settings: ``ridge`` (``lambda``) and ``min_images`` (see the module docstring)."""

    ridge: float = RIDGE
    min_images: int = MIN_IMAGES

    def check(self) -> Debias:
        if isinstance(self.ridge, bool) or not isinstance(self.ridge, (int, float)) or not self.ridge > 0:
            raise ValueError(f"ridge={self.ridge!r} must be a positive number, e.g. {RIDGE}")
        int_in_range("min_images", self.min_images, 1, 2**31)
        return self


def debias(query, gallery, query_camids, gallery_camids, *, ridge: float = RIDGE,
           min_images: int = MIN_IMAGES) -> tuple[Tensor, Tensor]:
    """Query and gallery features de-biased with the gallery's per-camera statistics.

    Args:
        query, gallery: ``[Q, D]`` and ``[G, D]`` features (any scale; L2-normalised first).
        query_camids, gallery_camids: ``[Q]`` and ``[G]`` integer camera ids.
        ridge: ``lambda``, the ridge of each camera's ``X^T X`` per reference image.
        min_images: reference images below which a camera uses the whole gallery's statistics.

    Returns:
        ``(query [Q, D], gallery [G, D])``, L2-normalised, in the query's dtype.
    """
    settings = Debias(ridge, min_images).check()
    query, gallery = as_features(query, "query"), as_features(gallery, "gallery")
    same_dim(query, gallery)
    qcams, gcams = (_cameras(ids, x, name) for ids, x, name in
                    ((query_camids, query, "query"), (gallery_camids, gallery, "gallery")))
    x = F.normalize(torch.cat([query, gallery.to(query)]).float(), dim=1)
    out = apply(x, torch.cat([qcams, gcams]), x[query.shape[0]:], gcams, settings).to(query.dtype)
    return out[:query.shape[0]], out[query.shape[0]:]


def debias_set(feats, camids, *, ridge: float = RIDGE, min_images: int = MIN_IMAGES) -> Tensor:
    """``[N, D]`` features de-biased with their own per-camera statistics (a train file, before training)."""
    settings = Debias(ridge, min_images).check()
    feats = as_features(feats, "features")
    x = F.normalize(feats.float(), dim=1)
    cams = _cameras(camids, feats, "features")
    return apply(x, cams, x, cams, settings).to(feats.dtype)


def apply(x: Tensor, cams: Tensor, reference: Tensor, reference_cams: Tensor, settings: Debias) -> Tensor:
    """``x [N, D]`` (camera ids ``cams [N]``) de-biased with the statistics of ``reference [R, D]`` (unit rows,
    cameras ``reference_cams [R]``); L2-normalised float32. Inputs are taken as checked."""
    x = F.normalize(x.float(), dim=1)
    out = torch.empty_like(x)
    seen, counts = reference_cams.unique(return_counts=True)
    own = {int(c) for c, n in zip(seen, counts) if int(n) >= settings.min_images}
    for camera in cams.unique().tolist():
        rows = cams == camera
        basis = reference[reference_cams == camera] if camera in own else reference
        out[rows] = _project(x[rows], basis, settings.ridge)
    return F.normalize(out, dim=1)


def _project(x: Tensor, basis: Tensor, ridge: float) -> Tensor:
    """``(X^T X + n ridge I)^{-1} (x - mean(X))`` for each row ``x`` of ``x [m, D]``, ``X = basis [n, D]``; the
    inverse through a Cholesky factor (the matrix is well conditioned: its eigenvalues lie in
    ``[n ridge, n (1 + ridge)]``), then one matmul (it is symmetric)."""
    n, dim = basis.shape
    gram = basis.T @ basis
    gram.diagonal().add_(n * ridge)
    return (x - basis.mean(dim=0)) @ torch.cholesky_inverse(torch.linalg.cholesky(gram))


def _cameras(ids, x: Tensor, name: str) -> Tensor:
    return camera_ids(ids, x.shape[0], f"{name}_camids", name,
                      f"{name}_camids is missing; de-biasing needs the camera id of every {name} image: add camids "
                      "to the features, or choose a method without de-biasing").to(x.device)


__all__ = ["Debias", "MIN_IMAGES", "RIDGE", "apply", "debias", "debias_set"]
