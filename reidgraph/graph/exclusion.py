"""The one exclusion rule of every kNN backend: which gallery item each query must not find, and how it is left out.

A query drawn from the gallery must not find itself: ``exclude[i]`` is the gallery index query ``i`` may
not return (``-1`` for none). Backends that score whole rows mask that column (:func:`mask_excluded`);
backends that return ranked lists ask for one neighbor more and drop it (:func:`drop_excluded`).
"""
from __future__ import annotations

import torch
from torch import Tensor


def exclusions(Q: int, G: int, exclude: Tensor | str | None, device: torch.device) -> Tensor | None:
    """``[Q]`` gallery index each query must not find (``-1`` for none; ``exclude="self"``: itself, query ``i``
    being gallery item ``i``), or ``None``; a one-line ``ValueError`` for an inconsistent request."""
    if isinstance(exclude, str):
        if exclude != "self":
            raise ValueError(f"exclude={exclude!r}: pass 'self', a [Q] gallery index per query, or None")
        if Q != G:
            raise ValueError(f"exclude='self' needs query and gallery to be the same set, got "
                             f"{Q} queries and {G} gallery items; pass exclude=<gallery index of each query>")
        return torch.arange(Q, device=device)
    if exclude is None:
        return None
    exclude = torch.as_tensor(exclude, device=device).long()
    if exclude.shape != (Q,) or bool(((exclude < -1) | (exclude >= G)).any()):
        raise ValueError(f"exclude must hold one gallery index in [-1, {G - 1}] per query ({Q}), "
                         f"got shape {tuple(exclude.shape)}")
    return exclude


def mask_excluded(sim: Tensor, exclude: Tensor | None) -> Tensor:
    """``sim [Q, G]`` with each row's excluded column (``exclude [Q]``, -1 for none) set to -inf, in place."""
    if exclude is not None:
        rows = torch.arange(sim.shape[0], device=sim.device)[exclude >= 0]
        sim[rows, exclude[exclude >= 0]] = float("-inf")
    return sim


def drop_excluded(sim: Tensor, idx: Tensor, exclude: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
    """``[Q, k]`` each of ``sim``, ``idx`` (``[Q, k + 1]`` neighbors, best first) without each row's excluded
    index ``exclude [Q]``, or without its last entry where the excluded one is absent (not that close, or
    outranked by exact duplicates); ``sim``, ``idx`` as they are where ``exclude`` is ``None``."""
    if exclude is None:
        return sim, idx
    drop = idx == exclude[:, None]
    drop[:, -1] |= ~drop.any(dim=1)
    return sim[~drop].view(-1, k), idx[~drop].view(-1, k)
