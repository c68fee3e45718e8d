"""``FeatureSet``: features with the labels that travel with them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._checks import as_features, as_labels

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

    Attributes:
        feats: ``[N, D]`` float features (not necessarily normalised).
        pids: ``[N]`` person ids (``-1`` junk, ``0`` distractor in Market-style sets).
        camids: ``[N]`` camera ids.
        paths: optional ``N`` image paths.
        split: optional ``N`` strings among ``train`` / ``query`` / ``gallery``.
    """

    feats: Tensor
    pids: Tensor
    camids: Tensor
    paths: list[str] | None = None
    split: list[str] | None = field(default=None)

    def __post_init__(self):
        self.feats = as_features(self.feats, "feats").float()
        n = self.feats.shape[0]
        self.pids = as_labels(self.pids, n, "pids", "feats")
        self.camids = as_labels(self.camids, n, "camids", "feats")
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
        return FeatureSet(self.feats[idx], self.pids[idx], self.camids[idx],
                          None if self.paths is None else [self.paths[i] for i in pick],
                          None if self.split is None else [self.split[i] for i in pick])

    def part(self, name: str) -> "FeatureSet":
        """Rows whose ``split`` is ``name``."""
        if self.split is None:
            raise ValueError(f"this feature set has no split; cannot select '{name}'")
        return self.subset(torch.tensor([s == name for s in self.split]))

    def query_gallery(self) -> tuple["FeatureSet", "FeatureSet"]:
        """Split into query and gallery.

        By ``split`` when present; otherwise by the CUHK03-NP rule: the first
        row of each (pid, camid) pair, in row order, is a query and the other
        rows are the gallery.
        """
        if self.split is not None:
            return self.part("query"), self.part("gallery")
        is_query = torch.tensor(first_of_each_pid_camid(zip(self.pids.tolist(), self.camids.tolist())))
        return self.subset(is_query), self.subset(~is_query)

    def hold_out_ids(self, fraction: float = 0.2, seed: int = 0) -> tuple["FeatureSet", "FeatureSet"]:
        """``(rest, held_out)``: the rows of a random ``fraction`` of the identities held out, for choosing settings.

        Both parts drop ``split``, so ``held_out.query_gallery()`` applies the
        CUHK03-NP rule inside it. Deterministic in ``seed``.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"fraction={fraction!r} is outside (0, 1); pass the share of identities to hold out")
        ids = self.pids.unique()
        order = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))]
        held = torch.isin(self.pids, order[:max(1, round(fraction * len(ids)))])
        rest, held_out = self.subset(~held), self.subset(held)
        rest.split = held_out.split = None
        return rest, held_out

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` with ``feats``, ``pids``, ``camids`` and, when present, ``paths``, ``split``."""
        arrays = {"feats": self.feats.numpy(), "pids": self.pids.numpy(), "camids": self.camids.numpy()}
        arrays.update({k: np.asarray(v) for k, v in (("paths", self.paths), ("split", self.split)) if v is not None})
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        """Read an ``.npz`` written by :meth:`save` (or by any tool with the same fields)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"features file {path} does not exist; pass the path of an .npz file")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("feats", "pids", "camids") if k not in data.files]
            if missing:
                raise ValueError(f"{path} lacks {', '.join(missing)}; a features file needs feats [N, D], "
                                 "pids [N] and camids [N]")
            fields = {k: data[k] for k in data.files if k in ("feats", "pids", "camids", "paths", "split")}
        try:
            return cls(**{k: torch.from_numpy(v) if k in ("feats", "pids", "camids") else v.tolist()
                          for k, v in fields.items()})
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
