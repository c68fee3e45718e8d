r"""Average query expansion (AQE) and its weighted form, alpha-QE.

AQE (Chum et al., ICCV 2007) replaces each query by the mean of itself and its
top-``n`` gallery neighbors; alpha-QE (Radenović, Tolias and Chum, TPAMI 2019)
weights every term by its cosine similarity to the query raised to ``alpha``
(the query itself has similarity 1):

.. math::
    \hat q = \frac{q + \sum_{j=1}^{n} w_j\, g_{(j)}}{\lVert q + \sum_{j=1}^{n} w_j\, g_{(j)} \rVert},
    \qquad w_j = \begin{cases} 1 & \text{AQE} \\ \max(0, q^\top g_{(j)})^{\alpha} & \text{alpha-QE} \end{cases}

with :math:`g_{(j)}` the ``j``-th most similar gallery feature (all L2-normalised).
The mean and the sum point the same way, so normalising the sum is the mean's
direction. Negative similarities are clipped to 0 so a fractional ``alpha``
stays real. With ``expand_gallery`` each gallery item is expanded the same way
by its ``n`` nearest other gallery items. The distance is
:math:`1 - \hat q^\top \hat g`.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

from reidgraph._checks import as_features, int_in_range, same_dim
from reidgraph.graph import knn
from reidgraph.ranking import CosineRanking


def average_query_expansion(query: Tensor, gallery: Tensor, n: int = 5, alpha: float | None = None,
                            expand_gallery: bool = False) -> CosineRanking:
    """Expand the queries (and optionally the gallery) by their nearest gallery neighbors.

    Args:
        query: ``[Q, D]`` features.
        gallery: ``[G, D]`` features.
        n: neighbors averaged in, ``1 <= n <= G`` (``G - 1`` with ``expand_gallery``). Default 5.
        alpha: ``None`` for AQE (equal weights), else alpha-QE with weights
            ``sim ** alpha``, ``alpha >= 0``. Default None.
        expand_gallery: expand each gallery item by its ``n`` nearest other
            gallery items too. Default False.

    Returns:
        A :class:`~reidgraph.ranking.CosineRanking` of the expanded features (``d = 1 - cos``).
    """
    query = F.normalize(as_features(query, "query"), dim=1)
    gallery = F.normalize(as_features(gallery, "gallery").to(query), dim=1)
    same_dim(query, gallery)
    G = gallery.shape[0]
    available = G - int(bool(expand_gallery))
    n = int_in_range("n", n, 1, available, f"the gallery offers {available} neighbors per item")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0):
        raise ValueError(f"alpha={alpha!r} must be a number >= 0, or None for plain averaging")
    expanded_query = _expand(query, gallery, *knn(query, gallery, n, backend="torch"), alpha)
    if expand_gallery:
        gallery = _expand(gallery, gallery, *knn(gallery, gallery, n, backend="torch", exclude="self"), alpha)
    return CosineRanking(expanded_query, gallery)


def _expand(x: Tensor, pool: Tensor, sims: Tensor, idx: Tensor, alpha: float | None) -> Tensor:
    """``[N, D]`` normalised ``x + sum_j w_j pool[idx_j]`` for neighbor lists ``sims, idx: [N, n]``."""
    weights = torch.ones_like(sims) if alpha is None else sims.clamp(min=0) ** alpha
    return F.normalize(x + torch.einsum("nk,nkd->nd", weights, pool[idx]), dim=1)
