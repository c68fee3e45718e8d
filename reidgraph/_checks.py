"""Input checks shared by every public function.

Each check raises a one-line ``ValueError`` that names the offending input and
says how to fix it, so users never see a traceback from deep inside torch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of ``err``'s message, cut at ``limit`` characters (its type's name where it says
    nothing), for one-line errors that quote a library's multi-line one."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


def as_features(x: Any, name: str, ndim: int = 2) -> Tensor:
    """Return ``x`` as a floating tensor of ``ndim`` dims, non-empty and finite.

    Args:
        x: array-like features, ``[N, D]`` (``ndim=2``) or ``[B, n, D]`` (``ndim=3``).
        name: how the caller calls this input, used in error messages.
    """
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: cannot be read as a numeric array ({err}); pass a tensor or numpy array") from None
    if x.is_meta:
        raise ValueError(f"{name}: is a meta tensor, which holds no values; pass the features themselves")
    if x.is_complex():
        raise ValueError(f"{name}: holds complex numbers; pass real features (e.g. x.real or x.abs())")
    if x.layout != torch.strided:
        x = x.to_dense()  # sparse features: the same values
    x = x.detach()  # features saved with requires_grad: ranking needs no gradient
    if x.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(x.shape)}; "
                         f"pass {'[N, D]' if ndim == 2 else '[B, n, D]'} features")
    if x.shape[-1] == 0:
        raise ValueError(f"{name}: features have dimension 0; pass at least one feature channel")
    if x.numel() == 0:
        raise ValueError(f"{name}: is empty (shape {tuple(x.shape)}); pass at least one feature vector")
    if not x.is_floating_point() or x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = x.float()  # integers, bool, and float8 formats, on which most operations are not defined
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=-1).sum())
        raise ValueError(f"{name}: {bad} feature vector(s) contain NaN or Inf; drop or repair them before ranking")
    return x


def same_dim(query: Tensor, gallery: Tensor, qname: str = "query", gname: str = "gallery") -> None:
    """Raise unless query and gallery features have the same dimension."""
    if query.shape[-1] != gallery.shape[-1]:
        raise ValueError(f"{qname} has {query.shape[-1]}-d features but {gname} has {gallery.shape[-1]}-d; "
                         "extract both with the same model")


def in_unit_interval(name: str, value: float) -> float:
    """Raise unless ``0 <= value <= 1``."""
    if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
        raise ValueError(f"{name}={value!r} is outside [0, 1]; pass a value between 0 and 1")
    return float(value)


def int_in_range(name: str, value: int, low: int, high: int, why: str = "") -> int:
    """Raise unless ``value`` is an integer with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} must be an integer in [{low}, {high}]")
    if not low <= int(value) <= high:
        hint = f" ({why})" if why else ""
        raise ValueError(f"{name}={value} is outside [{low}, {high}]{hint}; pass a value in that range")
    return int(value)


def as_labels(labels: Any, n: int, name: str, features: str) -> Tensor:
    """Return ``labels`` as an int64 tensor of length ``n`` (one per feature vector).

    Only integer dtypes are accepted. Floating labels are refused even when every
    value is integral (``1.0, 2.0``): ``torch.rand(5)`` would otherwise truncate
    to zeros silently, and a float dtype usually means the wrong array was passed.
    Booleans, complex numbers, text and objects are refused too; each with a
    one-line ``ValueError``.
    """
    if isinstance(labels, Tensor):
        t = labels
    else:
        arr = np.asarray(labels)
        if arr.dtype.kind not in "biufc":  # text, bytes, objects, dates: torch cannot hold them
            raise ValueError(f"{name} must hold integers, got {arr.dtype}; map the labels to integer ids")
        t = torch.as_tensor(arr)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} has shape {tuple(t.shape)} but {features} has {n} vectors; "
                         f"pass one {name.split('_')[-1].rstrip('s')} per vector")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got {t.dtype}; pass integer ids "
                         "(e.g. labels.long() after checking they are whole numbers)")
    return t.long()


def camera_ids(camids: Any, shape: int | tuple[int, ...], name: str, features: str, missing: str) -> Tensor:
    """``camids`` as int64 camera ids, one per vector of ``features``; every camera-id check goes through here.

    Args:
        shape: the number ``n`` of vectors (ids ``[n]``), or the shape of a batch of graphs' nodes
            (``(B, n)``: ids ``[B, n]``).
        missing: the message when ``camids`` is None: what needs the cameras and what to pass.

    Raises a one-line ``ValueError`` when the ids are missing, of the wrong shape or not integers.
    """
    if camids is None:
        raise ValueError(missing)
    if isinstance(shape, int):
        return as_labels(camids, shape, name, features)
    got = tuple(camids.shape) if hasattr(camids, "shape") else np.shape(camids)
    if tuple(got) != tuple(shape):
        raise ValueError(f"{name} must give one camera per node, shape {list(shape)}, got {list(got)}")
    flat = camids.reshape(-1) if isinstance(camids, Tensor) else np.asarray(camids).reshape(-1)
    return as_labels(flat, flat.shape[0], name, features).view(shape)


def same_camera_weight_and_ids(weight, camids, shape: tuple, single: bool = False):
    """Check a same-camera weight in ``[0, 1]`` and, when it is below 1, camera ids of ``shape``.

    ``single``: ``camids`` may come as one graph's ``[n]`` (made ``[1, n]``).
    Returns ``(weight, camids or None)``.
    """
    weight = in_unit_interval("same_camera_weight", weight)
    if weight == 1:
        return weight, None
    if single and camids is not None and np.ndim(camids) == 1:
        camids = camids[None] if isinstance(camids, Tensor) else np.asarray(camids)[None]
    return weight, camera_ids(camids, tuple(shape), "camids", "the graphs' nodes",
                              f"same_camera_weight={weight} makes graphs camera-aware, which needs each node's "
                              "camera id: pass camids (for features: the query's and gallery's camids)")


def given_neighbors(neighbors: Any, Q: int, G: int, k: int) -> Tensor:
    """The first ``k`` columns of a ``[Q, >= k]`` int64 table of gallery indices in ``[0, G)``, or a one-line
    ``ValueError`` naming what is wrong."""
    neighbors = torch.as_tensor(neighbors)
    if neighbors.dtype.is_floating_point or neighbors.dtype == torch.bool or neighbors.ndim != 2:
        raise ValueError(f"neighbors must be a [queries, k] integer table of gallery indices, got {neighbors.ndim}-d "
                         f"{neighbors.dtype}; pass the indices an index search returns")
    if neighbors.shape[0] != Q or neighbors.shape[1] < k:
        raise ValueError(f"neighbors is {tuple(neighbors.shape)} but {Q} queries with at least {k} neighbors each "
                         f"are needed; search {k} or more neighbors per query")
    neighbors = neighbors[:, :k].long()
    if neighbors.numel() and (int(neighbors.min()) < 0 or int(neighbors.max()) >= G):
        raise ValueError(f"neighbors holds indices outside the gallery's [0, {G}); search the index built over this "
                         "gallery")
    ordered = neighbors.sort(dim=1).values
    repeats = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
    if bool(repeats.any()):
        row = int(repeats.nonzero()[0])
        raise ValueError(f"neighbors row {row} names a gallery index more than once; each row must hold {k} distinct "
                         "gallery indices (an index search's result)")
    return neighbors


def usable_device(name, flag: str = "device") -> torch.device:
    """``name`` as a torch device this machine can compute on (the CPU, or a CUDA device it has); a one-line
    ``ValueError`` naming ``flag`` otherwise."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{flag} {name!r} is not a device; use cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{flag} {name}: reidgraph computes on cpu or cuda, not {device.type}; use one of those")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{flag} {name}: this machine has no CUDA device; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered "
                         "from 0; choose one of them")
    return device

