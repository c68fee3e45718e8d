"""k-nearest-neighbor search by cosine similarity, with swappable backends.

``knn(query, gallery, k)`` returns, for each query row, the ``k`` gallery rows
of largest cosine similarity, best first. Three backends:

* ``"torch"``: exact, a chunked matmul + ``topk``; memory is bounded by the
  chunk (``chunk_size`` query rows × the gallery), never ``Q × G`` at once.
  The default on CPU, where it is 10-80× faster than KeOps. Where bfloat16
  matmuls are fast (CUDA; CPUs with AVX512-BF16 or AMX) and ``k`` is small
  against the gallery, it screens in bfloat16 and refines in float32 (see
  :func:`screened_topk`): the same neighbors, about twice as fast.
* ``"keops"``: pykeops ``LazyTensor.Kmin_argKmin`` on the negated inner
  product; the ``Q × G`` matrix is never stored. The default on CUDA.
* ``"faiss"``: an exact ``faiss.IndexFlatIP`` (CPU), when faiss is installed;
  offered for comparison, never chosen by ``"auto"``.

Two approximate backends, for galleries past exact search, never chosen by
``"auto"`` (see :mod:`reidgraph.graph.ann`): ``"ivf"`` (faiss inverted file)
and ``"hnsw"`` (faiss HNSW graph). ``knn`` builds a temporary index over the
gallery with the settings in ``ann``, or searches a prebuilt
:class:`~reidgraph.graph.ann.AnnIndex` passed as ``ann``, so that a big
gallery's index is built once.

Every backend leaves out the items of ``exclude`` by the one
rule of :mod:`reidgraph.graph.exclusion`; whether pykeops and faiss are there
is asked of :mod:`reidgraph.graph.optional`.
"""
from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import as_features, int_in_range, same_dim
from .ann import KINDS, AnnIndex, HNSWSettings, IVFSettings, ann_knn
from .exclusion import drop_excluded, exclusions, mask_excluded
from .optional import faiss_module, keops_available, keops_cuda, keops_runs

BACKENDS = ("auto", "torch", "keops", "faiss", *KINDS)
# bfloat16 keeps 8 significant bits: rounding a value moves it by at most this fraction.
_BF16_UNIT = 2.0**-9
# Candidates kept per row by the bfloat16 screen, as a multiple of k; enough that
# nearly every row's float32 refinement is certified exact (see screened_topk).
_SCREEN_FACTOR = 3
# Candidates for each row's smallest product kept by the bfloat16 screen (see screened_extremes).
_LOW_CANDIDATES = 16


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``"auto"`` to ``"keops"`` on CUDA (when it installs and runs) and ``"torch"`` elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "keops" if device.type == "cuda" and keops_cuda() and keops_runs("cuda") else "torch"
    if backend == "keops" and not keops_available():
        raise ValueError("backend='keops' needs pykeops, which is not installed; "
                         "run `pip install pykeops` or use backend='torch'")
    if backend == "keops" and device.type == "cuda" and not keops_cuda():
        raise ValueError("backend='keops' on CUDA: pykeops found no CUDA compiler (nvrtc) and would run its CPU "
                         "kernel on GPU memory; use backend='torch', or point CUDA_PATH at a CUDA toolkit with "
                         "nvrtc (README: kNN backends)")
    if backend == "faiss" or backend in KINDS:
        faiss_module(f"backend={backend!r}", " or use backend='torch'")
    if backend == "faiss" and device.type != "cpu":
        raise ValueError("backend='faiss' runs on CPU tensors here; use backend='torch' or 'keops' on CUDA")
    return backend


@functools.cache
def fast_bfloat16(device_type: str) -> bool:
    """Whether bfloat16 matmuls run natively on ``device_type`` (CUDA, or a CPU with AVX512-BF16/AMX)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def worth_screening(k: int, gallery: Tensor) -> bool:
    """The ``screen=None`` rule: float32 features of at least 256 dimensions, fast bfloat16, and
    ``k <= G / 256``, so that gathering the ``3k`` candidates per row costs far less than the
    half of the matmul it saves."""
    G, D = gallery.shape
    return (gallery.dtype == torch.float32 and D >= 256 and 256 * k <= G
            and fast_bfloat16(gallery.device.type))


def knn(query: Tensor, gallery: Tensor, k: int, backend: str = "auto", exclude: Tensor | str | None = None,
        chunk_size: int = 1024,
        screen: bool | None = None,
        ann: AnnIndex | IVFSettings | HNSWSettings | dict | None = None) -> tuple[Tensor, Tensor]:
    r"""Top-``k`` gallery neighbors of each query by cosine similarity.

    .. math::
        \mathrm{knn}(q) = \operatorname{top-}k_{j}\;
        \frac{q^\top g_j}{\lVert q\rVert\,\lVert g_j\rVert}

    Args:
        query: ``[Q, D]`` features.
        gallery: ``[G, D]`` features.
        k: neighbors per query, ``1 <= k <= G`` (``G - 1`` with ``exclude``).
        backend: ``"auto"``, ``"torch"``, ``"keops"``, ``"faiss"``; or, approximate,
            ``"ivf"`` or ``"hnsw"`` (faiss; any device, searched on the CPU).
        exclude: ``[Q]`` gallery index to leave out of each query's
            neighbors (its own position when queries are drawn from the
            gallery), ``-1`` for none; ``"self"``: query ``i`` is gallery
            item ``i`` (the same set, ``Q == G``).
        chunk_size: query rows per matmul in the torch backend.
        screen: torch backend only: screen in bfloat16 and refine in float32
            (:func:`screened_topk`); ``None`` decides by :func:`worth_screening`.
        ann: ``"ivf"`` / ``"hnsw"`` only: a prebuilt
            :class:`~reidgraph.graph.ann.AnnIndex` of that kind over ``gallery``
            (searched as it is), or the settings of a temporary index over
            ``gallery``: :class:`~reidgraph.graph.ann.IVFSettings` /
            :class:`~reidgraph.graph.ann.HNSWSettings` or a dict of their
            fields; ``None``: their defaults.

    Returns:
        ``(similarities [Q, k], indices [Q, k])``, best first.
    """
    query = as_features(query, "query")
    gallery = as_features(gallery, "gallery")
    same_dim(query, gallery)
    exclude = exclusions(query.shape[0], gallery.shape[0], exclude, query.device)
    available = gallery.shape[0] - int(exclude is not None)
    int_in_range("k", k, 1, available, f"the gallery offers {available} neighbors per query")
    int_in_range("chunk_size", chunk_size, 1, 2**31)
    backend = resolve_backend(backend, query.device)
    if backend in KINDS:
        return ann_knn(query, gallery, k, backend, ann, exclude)
    if ann is not None:
        raise ValueError(f"ann= applies to backend='ivf' or 'hnsw', not {backend!r}; drop it or pick one of those")
    query = F.normalize(query, dim=1)
    gallery = F.normalize(gallery.to(query), dim=1)
    if backend == "keops":
        return _knn_keops(query, gallery, k, exclude)
    if backend == "faiss":
        return _knn_faiss(query, gallery, k, exclude)
    if screen is None:
        screen = worth_screening(k, gallery)
    return _knn_torch(query, gallery, k, exclude, chunk_size, screen)


def _knn_torch(query: Tensor, gallery: Tensor, k: int, exclude: Tensor | None,
               chunk_size: int, screen: bool) -> tuple[Tensor, Tensor]:
    gallery_bf16 = gallery.bfloat16() if screen else None
    sims, idxs = [], []
    for start in range(0, query.shape[0], chunk_size):
        chunk = query[start:start + chunk_size]
        own = None if exclude is None else exclude[start:start + chunk_size]
        if screen:
            s, i = screened_topk(chunk, gallery, k, own, gallery_bf16)
        else:
            s, i = mask_excluded(chunk @ gallery.T, own).topk(k, dim=1)
        sims.append(s)
        idxs.append(i)
    return torch.cat(sims), torch.cat(idxs)


def screened_topk(query: Tensor, gallery: Tensor, k: int, exclude: Tensor | None = None,
                  gallery_bf16: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""Exact top-``k`` inner products of unit rows, screened in bfloat16 and refined in float32.

    1. :math:`\tilde s_{ij}`: the products in bfloat16 (float32 accumulation),
       two to four times the float32 matmul rate on hardware with native bfloat16.
    2. The ``m = 3k`` best candidates of each row by :math:`\tilde s`, rescored
       exactly in float32; the top ``k`` of those are returned.
    3. Certificate: rounding to bfloat16 moves each factor by at most
       :math:`u = 2^{-9}` of itself and the product by :math:`u` of itself, so
       for unit vectors :math:`|\tilde s_{ij} - s_{ij}| \le \varepsilon =
       3u + u^2 + D\,2^{-24}`. Every item outside the candidates has
       :math:`\tilde s \le \tilde s_{(m)}`, hence :math:`s \le \tilde s_{(m)} +
       \varepsilon`; a row whose ``k``-th exact score exceeds that bound is
       exact. The rows that fail (few: tightly packed scores) are redone in float32.

    Args:
        query: ``[Q, D]`` unit rows; gallery: ``[G, D]`` unit rows (float32).
        k: neighbors per row.
        exclude: ``[Q]`` gallery column to leave out per row, ``-1`` for none.
        gallery_bf16: ``gallery`` in bfloat16, when the caller already has it.

    Returns:
        ``(similarities [Q, k], indices [Q, k])``, best first, the same as the
        float32 matmul + topk up to float32 rounding of the scores.
    """
    m = min(_SCREEN_FACTOR * k, gallery.shape[0] - (0 if exclude is None else 1))
    if m <= k:  # nothing to screen out
        return mask_excluded(query @ gallery.T, exclude).topk(k, dim=1)
    return _certified_top(query, gallery, k, m, exclude, _rough_products(query, gallery, exclude, gallery_bf16))


def screened_extremes(query: Tensor, gallery: Tensor, k: int,
                      gallery_bf16: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    r"""The exact top-``k`` and the exact smallest inner product of each row, from one bfloat16 product.

    The top ``k`` as in :func:`screened_topk`. The minimum likewise, from the other end: the
    16 smallest :math:`\tilde s` of each row are rescored in float32; every other item has
    :math:`s \ge \tilde s_{(16)} - \varepsilon` (:math:`\tilde s_{(16)}` the 16th smallest), so a
    row whose exact minimum lies below that bound is exact. The rows that fail are redone in float32.

    Args:
        query: ``[Q, D]`` unit rows; gallery: ``[G, D]`` unit rows (float32).
        k: neighbors per row, ``k <= G``.
        gallery_bf16: ``gallery`` in bfloat16, when the caller already has it.

    Returns:
        ``(similarities [Q, k], indices [Q, k], lowest [Q])``: the top ``k`` best first, and
        ``min_j query_i . gallery_j``, each as float32 computes it up to rounding.
    """
    m = _SCREEN_FACTOR * k
    if max(m, _LOW_CANDIDATES) >= gallery.shape[0]:  # nothing to screen out
        exact = query @ gallery.T
        return *exact.topk(k, dim=1), exact.amin(dim=1)
    rough = _rough_products(query, gallery, None, gallery_bf16)
    sim, idx = _certified_top(query, gallery, k, m, None, rough)
    low, candidates = rough.topk(_LOW_CANDIDATES, dim=1, largest=False)
    lowest = _sampled_products(query, gallery, candidates).amin(dim=1)
    redo = torch.nonzero(lowest >= low[:, -1].float() - screen_error(gallery.shape[1])).flatten()
    if redo.numel():
        lowest[redo] = (query[redo] @ gallery.T).amin(dim=1)
    return sim, idx, lowest


def screen_error(dim: int) -> float:
    """The bound :math:`\varepsilon` on ``|bfloat16 product - float32 product|`` of two unit rows of ``dim``."""
    return 3 * _BF16_UNIT + _BF16_UNIT**2 + dim * 2.0**-24


def _rough_products(query: Tensor, gallery: Tensor, exclude: Tensor | None,
                    gallery_bf16: Tensor | None) -> Tensor:
    """``[Q, G]`` bfloat16 products (float32 accumulation), each row's excluded column at -inf."""
    gallery_bf16 = gallery.bfloat16() if gallery_bf16 is None else gallery_bf16
    return mask_excluded(query.bfloat16() @ gallery_bf16.T, exclude)


def _certified_top(query: Tensor, gallery: Tensor, k: int, m: int, exclude: Tensor | None,
                   rough: Tensor) -> tuple[Tensor, Tensor]:
    """The exact top ``k`` from the ``m`` best candidates of ``rough``, rows failing the certificate redone."""
    bound, candidates = rough.topk(m, dim=1)
    exact = _sampled_products(query, gallery, candidates)
    sim, pos = exact.topk(k, dim=1)
    idx = candidates.gather(1, pos)
    redo = torch.nonzero(sim[:, -1] <= bound[:, -1].float() + screen_error(gallery.shape[1])).flatten()
    if redo.numel():
        own = None if exclude is None else exclude[redo]
        sim[redo], idx[redo] = mask_excluded(query[redo] @ gallery.T, own).topk(k, dim=1)
    return sim, idx


def _sampled_products(query: Tensor, gallery: Tensor, columns: Tensor) -> Tensor:
    """``[Q, m]`` float32 products ``query[i] . gallery[columns[i, j]]`` (see :func:`pair_products`)."""
    Q, m = columns.shape
    crow = torch.arange(0, Q * m + 1, m, device=columns.device)
    return pair_products(query, gallery, crow, columns.flatten()).view(Q, m)


def pair_products(a: Tensor, b: Tensor, crow: Tensor, cols: Tensor) -> Tensor:
    """``[E]`` products ``a[i] . b[cols[e]]`` of the pairs listed in CSR form, computed in place by a
    sampled dense-dense matmul (no ``[E, D]`` gather).

    Args:
        a: ``[A, D]``; b: ``[B, D]``.
        crow: ``[A + 1]`` row pointers: the pairs of row ``i`` are ``crow[i]:crow[i + 1]``.
        cols: ``[E]`` int64 rows of ``b``.
    """
    zeros = torch.zeros(cols.numel(), dtype=a.dtype, device=a.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        pattern = torch.sparse_csr_tensor(crow, cols, zeros, size=(a.shape[0], b.shape[0]), check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, a, b.T, beta=0.0).values()


def _knn_faiss(query: Tensor, gallery: Tensor, k: int, exclude: Tensor | None) -> tuple[Tensor, Tensor]:
    index = faiss_module("backend='faiss'").IndexFlatIP(gallery.shape[1])
    index.add(gallery.detach().float().contiguous().numpy())
    sim, idx = index.search(query.detach().float().contiguous().numpy(), k + int(exclude is not None))
    return drop_excluded(torch.from_numpy(sim).to(query.dtype), torch.from_numpy(idx).long(), exclude, k)


def _knn_keops(query: Tensor, gallery: Tensor, k: int, exclude: Tensor | None) -> tuple[Tensor, Tensor]:
    from pykeops.torch import LazyTensor

    q = LazyTensor(query[:, None, :].contiguous())
    g = LazyTensor(gallery[None, :, :].contiguous())
    # KeOps reduces by minimum, so rank by the negated inner product.
    neg, idx = (-(q | g)).Kmin_argKmin(k + int(exclude is not None), dim=1)
    return drop_excluded(-neg, idx.long(), exclude, k)
