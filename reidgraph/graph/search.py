"""k-nearest-neighbour search by cosine similarity, with swappable backends.

``knn(query, gallery, k)`` returns, for each query row, the ``k`` gallery rows
of largest cosine similarity, best first. Two backends:

* ``"torch"``: exact, a chunked matmul + ``topk``; memory is bounded by the
  chunk (``chunk_size`` query rows × the gallery), never ``Q × G`` at once.
  The default on CPU, where it is 10-80× faster than KeOps.
* ``"keops"``: pykeops ``LazyTensor.Kmin_argKmin`` on the negated inner
  product; the ``Q × G`` matrix is never stored. The default on CUDA.
"""
from __future__ import annotations

import functools
import subprocess
import sys
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import as_features, int_in_range, same_dim

BACKENDS = ("auto", "torch", "keops")


def keops_available() -> bool:
    """Whether pykeops imports (it compiles formulas with g++ on first use)."""
    try:
        import pykeops  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def keops_runs(device_type: str) -> bool:
    """Whether a tiny KeOps kNN runs on ``device_type``, tried once in a subprocess.

    A broken KeOps/CUDA toolchain can crash the interpreter (a segfault while
    linking its kernels, seen with pykeops 2.3 and CUDA 13), which no
    ``try`` catches; the subprocess keeps that crash out of the caller.
    """
    if not keops_available():
        return False
    probe = ("import torch; from pykeops.torch import LazyTensor as L; "
             f"x = torch.randn(64, 8, device='{device_type}'); "
             "(-(L(x[:, None]) | L(x[None]))).Kmin_argKmin(3, dim=1)")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False
    if done.returncode != 0:
        warnings.warn(f"KeOps failed a self-test on {device_type} (exit code {done.returncode}); "
                      "backend='auto' uses the torch kNN instead", RuntimeWarning, stacklevel=3)
    return done.returncode == 0


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``"auto"`` to ``"keops"`` on CUDA (when it installs and runs) and ``"torch"`` elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "keops" if device.type == "cuda" and keops_runs("cuda") else "torch"
    if backend == "keops" and not keops_available():
        raise ValueError("backend='keops' needs pykeops, which is not installed; "
                         "run `pip install pykeops` or use backend='torch'")
    return backend


def knn(query: Tensor, gallery: Tensor, k: int, backend: str = "auto", exclude_self: bool = False,
        exclude: Tensor | None = None, chunk_size: int = 1024) -> tuple[Tensor, Tensor]:
    r"""Top-``k`` gallery neighbours of each query by cosine similarity.

    .. math::
        \mathrm{knn}(q) = \operatorname{top-}k_{j}\;
        \frac{q^\top g_j}{\lVert q\rVert\,\lVert g_j\rVert}

    Args:
        query: ``[Q, D]`` features.
        gallery: ``[G, D]`` features.
        k: neighbours per query, ``1 <= k <= G`` (``G - 1`` with ``exclude_self``).
        backend: ``"auto"``, ``"torch"`` or ``"keops"``.
        exclude_self: query ``i`` is gallery item ``i`` (same set, ``Q == G``);
            leave it out of its own neighbours.
        exclude: ``[Q]`` gallery index to leave out of each query's
            neighbours (its own position when queries are drawn from the
            gallery), ``-1`` for none. Exclusive with ``exclude_self``.
        chunk_size: query rows per matmul in the torch backend.

    Returns:
        ``(similarities [Q, k], indices [Q, k])``, best first.
    """
    query = as_features(query, "query")
    gallery = as_features(gallery, "gallery")
    same_dim(query, gallery)
    exclude = _exclusions(query.shape[0], gallery.shape[0], exclude_self, exclude, query.device)
    available = gallery.shape[0] - int(exclude is not None)
    int_in_range("k", k, 1, available, f"the gallery offers {available} neighbours per query")
    int_in_range("chunk_size", chunk_size, 1, 2**31)
    query = F.normalize(query, dim=1)
    gallery = F.normalize(gallery.to(query), dim=1)
    if resolve_backend(backend, query.device) == "keops":
        return _knn_keops(query, gallery, k, exclude)
    return _knn_torch(query, gallery, k, exclude, chunk_size)


def _exclusions(Q: int, G: int, exclude_self: bool, exclude: Tensor | None,
                device: torch.device) -> Tensor | None:
    if exclude_self and exclude is not None:
        raise ValueError("pass exclude_self=True or an exclude index, not both")
    if exclude_self:
        if Q != G:
            raise ValueError(f"exclude_self=True needs query and gallery to be the same set, got "
                             f"{Q} queries and {G} gallery items; pass exclude=<gallery index of each query>")
        return torch.arange(Q, device=device)
    if exclude is None:
        return None
    exclude = torch.as_tensor(exclude, device=device).long()
    if exclude.shape != (Q,) or bool(((exclude < -1) | (exclude >= G)).any()):
        raise ValueError(f"exclude must hold one gallery index in [-1, {G - 1}] per query ({Q}), "
                         f"got shape {tuple(exclude.shape)}")
    return exclude


def _knn_torch(query: Tensor, gallery: Tensor, k: int, exclude: Tensor | None,
               chunk_size: int) -> tuple[Tensor, Tensor]:
    sims, idxs = [], []
    for start in range(0, query.shape[0], chunk_size):
        sim = query[start:start + chunk_size] @ gallery.T
        if exclude is not None:
            own = exclude[start:start + chunk_size]
            rows = torch.arange(sim.shape[0], device=sim.device)[own >= 0]
            sim[rows, own[own >= 0]] = float("-inf")
        s, i = sim.topk(k, dim=1)
        sims.append(s)
        idxs.append(i)
    return torch.cat(sims), torch.cat(idxs)


def _knn_keops(query: Tensor, gallery: Tensor, k: int, exclude: Tensor | None) -> tuple[Tensor, Tensor]:
    from pykeops.torch import LazyTensor

    q = LazyTensor(query[:, None, :].contiguous())
    g = LazyTensor(gallery[None, :, :].contiguous())
    # KeOps reduces by minimum, so rank by the negated inner product.
    neg, idx = (-(q | g)).Kmin_argKmin(k + int(exclude is not None), dim=1)
    sim, idx = -neg, idx.long()
    if exclude is not None:
        # Drop each row's excluded index; rows where it is absent (not that
        # close, or outranked by exact duplicates) drop their last entry.
        drop = idx == exclude[:, None]
        drop[:, -1] |= ~drop.any(dim=1)
        sim = sim[~drop].view(-1, k)
        idx = idx[~drop].view(-1, k)
    return sim, idx
