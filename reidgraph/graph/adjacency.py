r"""Edge weights of a neighborhood graph (paper eqs. (2)-(10), §3.2 "Edge Setting").

A batch of graphs is a tensor ``x: [B, n, D]`` whose node 0 is each graph's
anchor and nodes ``1..K`` its top-K neighbors (``n = K + 1``). From it:

.. math::
    c_{ij} = \frac{x_i^\top x_j}{\lVert x_i\rVert\,\lVert x_j\rVert}, \qquad
    R(i) = \{ j : j \in \mathrm{top}_k(i) \wedge i \in \mathrm{top}_k(j) \}, \qquad
    v_{ij} = \max(c_{ij}, 0)\,[j \in R(i)]

.. math::
    d_{ij} = \frac{\sum_l \min(v_{il}, v_{jl})}{\sum_l \max(v_{il}, v_{jl})}, \qquad
    A = \big(\lambda D + (1-\lambda) C\big)_{+} \circ B, \qquad
    S = \Lambda^{-1/2} A \Lambda^{-1/2}

``c_ii = 1`` for every node (even a zero vector) and every ``c_ij`` lies in
``[-1, 1]``; ``top_k(i)`` holds ``i`` itself (rank 0) and ties are broken by
node index; ``B`` keeps, per row, the node itself and the entries at least as
large as the row's τ-th largest (the node itself counting as the largest).
Negative cosines carry no weight in ``D`` (``v >= 0``), so ``D``, ``A`` and
``S`` lie in ``[0, 1]`` and every node keeps its self-loop, for any input.

Camera-aware graphs (beyond the paper): given each node's camera, the
similarity of two distinct nodes of the same camera is scaled first,
:math:`c_{ij} \leftarrow w\,c_{ij}` for :math:`i \ne j,\ cam_i = cam_j`, and
everything above (k-reciprocal sets, ``D``, ``C`` in ``A``, the mask) follows
from the scaled ``C``. ``w = 0`` ignores same-camera neighbors, ``w = 1`` is
the paper. Same-camera neighbors share background, light and viewpoint, and
mostly show other people; see CA-Jaccard (Chen et al., CVPR 2024).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import as_features, in_unit_interval, int_in_range, same_camera_weight_and_ids

EDGE_KINDS = ("joint", "cosine")


def cosine_similarity(x: Tensor) -> Tensor:
    r"""Pairwise cosine similarity inside each graph (eq. 3): ``[B, n, D] -> [B, n, n]``.

    Clipped to ``[-1, 1]`` against rounding, with the diagonal exactly 1 (a node
    is identical to itself, even a zero vector), so no other node can outrank a
    node in its own row. The Gram matrix is scaled by its own diagonal's inverse
    square roots (0 for a zero vector), which spares a normalised copy of ``x``.
    """
    c = x @ x.transpose(-1, -2)
    norms = c.diagonal(dim1=-2, dim2=-1)
    inv = torch.where(norms > 0, norms.clamp(min=torch.finfo(c.dtype).tiny).rsqrt(), 0)
    c.mul_(inv[..., :, None]).mul_(inv[..., None, :]).clamp_(-1, 1)
    c.diagonal(dim1=-2, dim2=-1).fill_(1)
    return c


def topk_members(c: Tensor, k: int) -> Tensor:
    r"""Indices of each node's top-``k`` nodes by similarity, itself first.

    Ties are broken by the lower node index (a stable sort).

    Args:
        c: ``[B, n, n]`` similarities.

    Returns:
        ``[B, n, k]`` node indices, best first, ``[..., 0]`` the node itself.
    """
    return _ranked(c).sort(dim=-1, descending=True, stable=True).indices[..., :k]


def _ranked(c: Tensor) -> Tensor:
    """``c`` with the diagonal at infinity: the node itself is rank 0 even when a duplicate of it has similarity 1."""
    key = c.clone()
    key.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
    return key


def _top_set(c: Tensor, k: int) -> Tensor:
    """The node sets of :func:`topk_members` ``[B, n, k]``, in any order within a row: from ``topk`` (a third of
    a full sort's time) where no tie crosses the k-th place, which leaves the set unambiguous; else the sort."""
    key = _ranked(c)
    values, top = key.topk(k, dim=-1)
    if bool(((key >= values[..., -1:]).sum(-1) == k).all()):
        return top
    return key.sort(dim=-1, descending=True, stable=True).indices[..., :k]


def soft_jaccard(c: Tensor, k: int) -> Tensor:
    r"""Soft Jaccard similarity over k-reciprocal sets (eqs. 5-7).

    :math:`d_{ij} = \sum_l \min(v_{il}, v_{jl}) / \sum_l \max(v_{il}, v_{jl})`,
    0 where the denominator is 0, with :math:`v_{ij} = \max(c_{ij}, 0)\,[j \in R(i)]`.
    Negative cosines are clipped to 0: with signed ``v`` the sums can cancel to
    ~0 or go negative and the ratio leaves ``[0, 1]`` (e.g. ``6e15``). With
    ``v >= 0`` both sums are ``>= 0`` and ``min <= max``, so ``d`` is in
    ``[0, 1]`` (the result is clipped there against rounding only).

    With :math:`\min(a, b) = a - (a - b)_+` and :math:`\max(a, b) = b + (a - b)_+`,
    both sums follow from :math:`P_{ij} = \sum_l (v_{il} - v_{jl})_+`:
    :math:`\sum_l \min = r_i - P_{ij}` and :math:`\sum_l \max = r_j + P_{ij}`,
    :math:`r_i = \sum_l v_{il}`. Row ``i`` of ``V`` is zero outside
    ``top_k(i)`` and ``v >= 0``, so ``P`` needs ``k`` gathered terms per pair:
    ``O(B n^2 k)`` time and ``O(B n^2)``
    memory instead of ``O(B n^3)``.

    Args:
        c: ``[B, n, n]`` cosine similarities.
        k: size of each node's top-k list, ``1 <= k <= n``.

    Returns:
        ``[B, n, n]`` soft Jaccard similarities.
    """
    B, n, _ = c.shape
    top = _top_set(c, k)
    member = torch.zeros_like(c, dtype=torch.bool).scatter_(-1, top, True)
    v = c.clamp(min=0) * (member & member.transpose(-1, -2))
    rows_of_t = v.transpose(-1, -2).reshape(B * n, n)  # row b * n + l holds v_{j, l} of graph b over j
    first = (torch.arange(B, device=c.device) * n)[:, None]
    # Terms l outside top_k(i) have v_il = 0 <= v_jl: they add nothing to P.
    p, v_jl, term = torch.zeros_like(c), torch.empty_like(c), torch.empty_like(c)
    for m in range(k):
        l = top[..., m]
        torch.index_select(rows_of_t, 0, (first + l).reshape(-1), out=v_jl.view(B * n, n))  # v_{j, l_i} at (i, j)
        torch.sub(v.gather(-1, l[..., None]), v_jl, out=term)
        p += term.clamp_(min=0)
    r = v.sum(-1)
    s_min = r[:, :, None] - p
    s_max = r[:, None, :] + p
    return torch.where(s_max > 0, s_min / torch.where(s_max > 0, s_max, 1), 0).clamp_(0, 1)


def row_topk_mask(a: Tensor, tau: int) -> Tensor:
    r"""Keep each row's entries ``>=`` its τ-th largest value, zero the rest (eqs. 9-10).

    For square ``a`` (``[..., n, n]``) the node itself (the diagonal) is always
    kept and ranks as the row's largest, whatever rounding did to its value, so
    a self-loop is never masked out.
    """
    key = a
    if a.shape[-1] == a.shape[-2]:
        key = a.clone()
        key.diagonal(dim1=-2, dim2=-1).copy_(a.amax(dim=-1))
    threshold = key.topk(tau, dim=-1).values[..., -1:]
    return a * (key >= threshold)


def camera_scaled(c: Tensor, camids: Tensor, weight: float) -> Tensor:
    r"""``c`` with entries between distinct nodes of the same camera multiplied by ``weight``.

    Args:
        c: ``[B, n, n]`` similarities; camids: ``[B, n]`` camera of each node.
    """
    same = camids[:, :, None] == camids[:, None, :]
    same.diagonal(dim1=-2, dim2=-1).fill_(False)
    return torch.where(same, weight * c, c)


def neighborhood_adjacency(x: Tensor, k: int = 20, lam: float = 0.7, tau: int = 20,
                           edges: str = "joint", mask: bool = True, camids: Tensor | None = None,
                           same_camera_weight: float = 1.0) -> Tensor:
    r"""Masked, non-negative edge weights ``A`` of a batch of neighborhood graphs.

    :math:`A = (\lambda D + (1-\lambda) C)_{+} \circ B` with ``edges="joint"``
    (clipped to ``[0, 1]``, which only rounding can leave; diagonal kept by ``B``);
    :math:`A = (C)_{+} \circ B` with ``edges="cosine"``; ``mask=False`` drops ``B``.
    Rows are targets: ``A[b, i, j]`` weighs the edge ``j -> i``.

    Args:
        x: ``[B, n, D]`` node features, node 0 the anchor (``[n, D]`` is one graph).
        k: k-reciprocal neighborhood size, ``1 <= k <= n`` (default 20).
        lam: weight λ of the Jaccard term, in ``[0, 1]`` (default 0.7).
        tau: edges kept per row by the mask, ``1 <= tau <= n`` (default 20).
        edges: ``"joint"`` (eq. 8) or ``"cosine"`` (the paper's ``ori`` ablation).
        mask: apply the per-row top-τ mask.
        camids: ``[B, n]`` (or ``[n]``) camera id of each node; needed when
            ``same_camera_weight < 1``.
        same_camera_weight: factor ``w`` in ``[0, 1]`` on the similarity of two
            distinct nodes of one camera, before everything else (1: the paper).

    Returns:
        ``[B, n, n]`` (or ``[n, n]``) adjacency.
    """
    single = isinstance(x, Tensor) and x.dim() == 2
    x = as_features(x[None] if single else x, "x", ndim=3)
    n = x.shape[1]
    check_graph_params(n, k, lam, tau, edges)
    weight, camids = same_camera_weight_and_ids(same_camera_weight, camids, tuple(x.shape[:2]), single)
    a = checked_adjacency(x, k, lam, tau, edges, mask, camids, weight)
    return a[0] if single else a


def checked_adjacency(x: Tensor, k: int, lam: float, tau: int, edges: str, mask: bool, camids: Tensor | None,
                      same_camera_weight: float) -> Tensor:
    """:func:`neighborhood_adjacency` of ``[B, n, D]`` graphs whose inputs and settings the caller has checked
    (the graph batches of re-ranking and training: their features are checked once, not once per batch)."""
    c = cosine_similarity(x)
    if same_camera_weight < 1:
        c = camera_scaled(c, camids.to(c.device), same_camera_weight)
    a = c if edges == "cosine" else lam * soft_jaccard(c, k) + (1 - lam) * c
    a = a.clamp(0, 1)
    return row_topk_mask(a, tau) if mask else a


def check_graph_params(n: int, k: int, lam: float, tau: int, edges: str) -> None:
    """Raise a ``ValueError`` naming the first graph setting that cannot work on ``n``-node graphs."""
    int_in_range("k", k, 1, n, f"a graph has K+1={n} nodes")
    int_in_range("tau", tau, 1, n, f"a graph has K+1={n} nodes")
    in_unit_interval("lam", lam)
    if edges not in EDGE_KINDS:
        raise ValueError(f"edges={edges!r} is unknown; choose one of {', '.join(EDGE_KINDS)}")


def normalize_adjacency(a: Tensor) -> Tensor:
    r"""Symmetric degree normalisation (eq. 2): :math:`S = \Lambda^{-1/2} A \Lambda^{-1/2}`.

    :math:`\Lambda = \mathrm{diag}(\sum_j a_{ij})`, the row sums; a node of zero
    degree gets zero rows and columns. When every ``a_jj`` is its row's largest
    entry (as in :func:`neighborhood_adjacency`), :math:`s_{ij} \le a_{ij} / a_{jj} \le 1`.

    Args:
        a: ``[..., n, n]`` non-negative adjacency.

    Returns:
        ``[..., n, n]`` normalised adjacency ``S``.

    Raises:
        ValueError: if ``a`` holds a negative or NaN weight.
    """
    if a.numel() and not bool((a >= 0).all()):
        raise ValueError(f"a: normalize_adjacency needs non-negative weights, got min {float(a.min()):.3g} "
                         "(or NaN); clamp or mask the adjacency first, e.g. a.clamp(min=0)")
    deg = a.sum(-1)
    inv_sqrt = torch.where(deg > 0, deg.clamp(min=torch.finfo(a.dtype).tiny).rsqrt(), 0)
    return inv_sqrt[..., :, None] * a * inv_sqrt[..., None, :]
