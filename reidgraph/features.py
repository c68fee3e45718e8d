"""``FeatureSet``: features with the labels that travel with them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._checks import as_features, as_labels
from .atomic import atomic_write
from .feature_files import FIELDS, LABELS, read_fields

SPLITS = ("train", "query", "gallery")


def first_of_each_pid_camid(pairs) -> list[bool]:
    """The CUHK03-NP query rule: ``True`` for the first of each (pid, camid) pair, in order."""
    seen, first = set(), []
    for key in pairs:
        first.append(key not in seen)
        seen.add(key)
    return first


@dataclass
class FeatureSet:
    """Features ``[N, D]`` with their person ids, camera ids and optional paths/splits.

    Training and evaluation need ``pids`` and ``camids``; a set read for
    ranking alone may lack them (see :meth:`require_labels`).

    Attributes:
        feats: ``[N, D]`` float features (not necessarily normalised).
        pids: optional ``[N]`` person ids (``-1`` junk, ``0`` distractor in Market-style sets).
        camids: optional ``[N]`` camera ids.
        paths: optional ``N`` image paths.
        split: optional ``N`` strings among ``train`` / ``query`` / ``gallery``.
    """

    feats: Tensor
    pids: Tensor | None = None
    camids: Tensor | None = None
    paths: list[str] | None = None
    split: list[str] | None = field(default=None)

    def __post_init__(self):
        self.feats = as_features(self.feats, "feats").float()
        n = self.feats.shape[0]
        for name in LABELS:
            value = getattr(self, name)
            if value is not None:
                try:
                    setattr(self, name, as_labels(value, n, name, "feats"))
                except TypeError:  # torch refuses strings and objects
                    raise ValueError(f"{name} must hold integers, got {np.asarray(value).dtype}; "
                                     "map the labels to integer ids") from None
        for name in ("paths", "split"):
            value = getattr(self, name)
            if value is not None:
                value = [str(v) for v in value]
                if len(value) != n:
                    raise ValueError(f"{name} has {len(value)} entries but feats has {n} rows; pass one per row")
                setattr(self, name, value)
        if self.split is not None and not set(self.split) <= set(SPLITS):
            raise ValueError(f"split holds {sorted(set(self.split) - set(SPLITS))}; use only {', '.join(SPLITS)}")

    def __len__(self) -> int:
        return self.feats.shape[0]

    def subset(self, rows) -> "FeatureSet":
        """The rows selected by a boolean mask or an index array."""
        rows = torch.as_tensor(rows)
        idx = rows.nonzero().flatten() if rows.dtype == torch.bool else rows.long()
        pick = idx.tolist()
        return FeatureSet(self.feats[idx], *(None if t is None else t[idx] for t in (self.pids, self.camids)),
                          *(None if v is None else [v[i] for i in pick] for v in (self.paths, self.split)))

    def require_labels(self, purpose: str, source: str | None = None, *,
                       fields: tuple[str, ...] = ("pids", "camids")) -> "FeatureSet":
        """``self``, or a one-line ``ValueError`` naming the first of ``fields`` it lacks.

        Args:
            purpose: what needs the labels, e.g. ``"evaluation"``.
            source: where the features came from (a file name), for the message.
            fields: the labels ``purpose`` needs, among ``pids``, ``camids``.
        """
        for name in fields:
            if getattr(self, name) is None:
                raise ValueError(f"{source or 'this feature set'} has no {name} ({LABELS[name]}); "
                                 f"{purpose} needs them: add a {name} field")
        return self

    def part(self, name: str) -> "FeatureSet":
        """Rows whose ``split`` is ``name``."""
        if self.split is None:
            raise ValueError(f"this feature set has no split; cannot select '{name}'")
        rows = torch.tensor([s == name for s in self.split], dtype=torch.bool)
        if not rows.any():
            present = ", ".join(repr(s) for s in sorted(set(self.split))) or "none"
            raise ValueError(f"the features have no rows of split '{name}' (their splits: {present}); "
                             f"pass a file with {name} rows, or separate files")
        return self.subset(rows)

    def query_gallery(self) -> tuple["FeatureSet", "FeatureSet"]:
        """Split into query and gallery.

        By ``split`` when present; otherwise by the CUHK03-NP rule: the first
        row of each (pid, camid) pair, in row order, is a query and the other
        rows are the gallery, which needs ``pids`` and ``camids``.
        """
        if self.split is not None:
            return self.part("query"), self.part("gallery")
        missing = [name for name in LABELS if getattr(self, name) is None]
        if missing:
            raise ValueError(f"the features have no split and no {' or '.join(missing)} to split them by "
                             "(CUHK03-NP rule); pass query and gallery as separate files, or add a split field")
        is_query = torch.tensor(first_of_each_pid_camid(zip(self.pids.tolist(), self.camids.tolist())))
        return self.subset(is_query), self.subset(~is_query)

    def hold_out_ids(self, fraction: float = 0.2, seed: int = 0) -> tuple["FeatureSet", "FeatureSet"]:
        """``(rest, held_out)``: the rows of a random ``fraction`` of the identities held out, for choosing settings.

        Both parts drop ``split``, so ``held_out.query_gallery()`` applies the
        CUHK03-NP rule inside it. Needs ``pids``; deterministic in ``seed``.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"fraction={fraction!r} is outside (0, 1); pass the share of identities to hold out")
        self.require_labels("holding out identities", fields=("pids",))
        ids = self.pids.unique()
        order = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))]
        held = torch.isin(self.pids, order[:max(1, round(fraction * len(ids)))])
        rest, held_out = self.subset(~held), self.subset(held)
        rest.split = held_out.split = None
        return rest, held_out

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` with the fields present among ``feats``, ``pids``, ``camids``, ``paths``, ``split``,
        at ``path`` exactly (no suffix added) and whole or not at all (:func:`~reidgraph.atomic.atomic_write`)."""
        values = {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}
        with atomic_write(path, "wb") as f:
            np.savez(f, **{k: v.numpy() if isinstance(v, Tensor) else np.asarray(v) for k, v in values.items()})

    @classmethod
    def load(cls, path: str | Path, format: str | None = None, labels: bool = True) -> "FeatureSet":
        """Read a features file: our ``.npz`` (see :meth:`save`), a ``.mat``, ``.npy`` + ``.csv`` or ``.pt``.

        See :func:`reidgraph.feature_files.read_fields`; ``labels=True``
        requires ``pids`` and ``camids``.
        """
        fields = read_fields(path, format, labels)
        try:
            return cls(**fields)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
