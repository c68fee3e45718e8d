"""How a neighborhood graph is built: the settings of paper eqs. (2)-(10) and the adjacency they give."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor

from .._checks import in_unit_interval, int_in_range
from .adjacency import check_graph_params, checked_adjacency, neighborhood_adjacency, normalize_adjacency


@dataclass(frozen=True)
class GraphSettings:
    """How a neighborhood graph is built; defaults are the paper's.

    Attributes:
        K: neighbors per anchor (graph of ``K + 1`` nodes).
        k: k-reciprocal neighborhood size inside a graph.
        lam: the FFGNN paper's λ (eq. 8), the weight of the soft Jaccard similarity ``D`` in
            ``A = (λ D + (1 - λ) C)_+ ∘ B`` (the cosine ``C`` gets ``1 - λ``). Zhong et al.'s λ, the
            ``lam`` of :func:`~reidgraph.rerank.k_reciprocal`, weights the other term, the original distance.
        tau: edges kept per node by the mask (eqs. 9-10).
        edges: ``"joint"`` (eq. 8) or ``"cosine"`` (ablation ``ori``).
        mask: apply the top-τ mask (``False``: ablation ``wo_mask``).
        same_camera_weight: factor on the similarity of two distinct nodes of
            one camera before the graph is built (1: the paper; 0: camera-aware,
            same-camera neighbors ignored). Below 1, graphs need camera ids.
    """

    K: int = 150
    k: int = 20
    lam: float = 0.7
    tau: int = 20
    edges: str = "joint"
    mask: bool = True
    same_camera_weight: float = 1.0

    @property
    def camera_aware(self) -> bool:
        return self.same_camera_weight < 1

    def check(self, num_candidates: int | None = None) -> None:
        """Raise a ``ValueError`` naming the first setting that cannot work: first those wrong whatever the data
        (``K=0``, ``tau=0``, ``lam=nan``, ...), then ``K`` against the candidates, then ``k`` and ``tau`` against ``K``."""
        int_in_range("K", self.K, 1, 2**31)
        int_in_range("k", self.k, 1, 2**31)
        int_in_range("tau", self.tau, 1, 2**31)
        in_unit_interval("lam", self.lam)
        in_unit_interval("same_camera_weight", self.same_camera_weight)
        if num_candidates is not None:
            int_in_range("K", self.K, 1, num_candidates,
                         f"only {num_candidates} candidates per anchor; the maximum is K={num_candidates}")
        else:
            int_in_range("K", self.K, 1, 2**31)
        check_graph_params(self.K + 1, self.k, self.lam, self.tau, self.edges)

    def adjacency(self, x: Tensor, camids: Tensor | None = None) -> Tensor:
        """Normalised adjacency ``S [B, n, n]`` of graphs ``x [B, n, D]`` (cameras ``camids [B, n]``)."""
        return normalize_adjacency(neighborhood_adjacency(
            x, k=self.k, lam=self.lam, tau=self.tau, edges=self.edges, mask=self.mask, camids=camids,
            same_camera_weight=self.same_camera_weight))

    def checked_adjacency(self, x: Tensor, camids: Tensor | None = None) -> Tensor:
        """:meth:`adjacency` of graphs whose features (finite ``[B, n, D]``) and cameras the caller has checked,
        with these settings checked too (:meth:`check`): the same result without checking each batch again."""
        return normalize_adjacency(checked_adjacency(x, self.k, self.lam, self.tau, self.edges, self.mask, camids,
                                                     self.same_camera_weight))

    def as_dict(self) -> dict:
        return asdict(self)


RECIPE = GraphSettings(lam=0.3, same_camera_weight=0.0)
"""The default recipe's graphs: camera-aware (same-camera neighbors ignored), λ 0.3; the paper's otherwise.
Chosen on identities held out inside the train split (README, "How the default recipe was chosen"); training
(``train-gnn``'s default preset) and training-free ``fusion`` share them."""

