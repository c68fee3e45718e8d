"""Re-ranked lists on disk: ``.npz``, ``.csv`` or ``.json``, each written atomically.

* ``.npz``: ``index`` ``[Q, top]`` int64 gallery row numbers, best first;
  ``distance`` ``[Q, top]`` float32, ascending; ``query_paths`` ``[Q]`` and
  ``gallery_paths`` ``[G]`` when the inputs have paths.
* ``.csv``: header ``query,rank,gallery,distance``, one line per (query, rank),
  rank from 1; query and gallery are paths where present, else row numbers.
* ``.json``: the same rows as a list of objects with those four keys.

The file appears whole or not at all: it is written beside its final name and
renamed into place, and removed if writing fails.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from torch import Tensor

from .atomic import atomic_write

LIST_FORMATS = ("npz", "csv", "json")


def output_format(path: str | Path) -> str:
    """The format of an output path by its extension; a one-line error for an unknown one or a missing folder."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in LIST_FORMATS:
        raise ValueError(f"--out {path}: unknown extension {path.suffix or '(none)'!r}; "
                         f"end the name in {', '.join('.' + f for f in LIST_FORMATS)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--out {path}: folder {path.parent} does not exist; create it first")
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; pass a file name ending in .{kind}")
    return kind


def write_ranked(path: str | Path, index: Tensor, distance: Tensor, query_paths: Sequence[str] | None = None,
                 gallery_paths: Sequence[str] | None = None) -> Path:
    """Write each query's ranked gallery list (see the module docstring for the layouts).

    Args:
        path: output file; its extension picks the format.
        index: ``[Q, top]`` gallery row numbers, best first.
        distance: ``[Q, top]`` their distances, ascending.
        query_paths, gallery_paths: optional ``Q`` / ``G`` image paths.

    Returns:
        The path written.
    """
    path = Path(path)
    kind = output_format(path)
    index, distance = index.long().cpu().numpy(), distance.float().cpu().numpy()
    with atomic_write(path, "wb" if kind == "npz" else "w", **({"newline": ""} if kind == "csv" else {})) as f:
        if kind == "npz":
            arrays = {"index": index, "distance": distance}
            arrays.update({name: np.asarray(list(p), dtype=str) for name, p in
                           (("query_paths", query_paths), ("gallery_paths", gallery_paths)) if p is not None})
            np.savez(f, **arrays)
        elif kind == "csv":
            out = csv.writer(f)
            out.writerow(["query", "rank", "gallery", "distance"])
            out.writerows(_rows(index, distance, query_paths, gallery_paths))
        else:
            _write_json(f, _rows(index, distance, query_paths, gallery_paths))
    return path


def _rows(index: np.ndarray, distance: np.ndarray, query_paths, gallery_paths) -> Iterator[tuple]:
    """``(query, rank, gallery, distance)`` per listed item, paths where given, else row numbers."""
    for q in range(index.shape[0]):
        query = query_paths[q] if query_paths is not None else q
        for rank, (g, d) in enumerate(zip(index[q].tolist(), distance[q].tolist()), start=1):
            yield query, rank, gallery_paths[g] if gallery_paths is not None else g, float(f"{d:.7g}")


def _write_json(f, rows: Iterator[tuple]) -> None:
    """A JSON list of ``{"query", "rank", "gallery", "distance"}`` objects, streamed row by row."""
    f.write("[")
    for n, (query, rank, gallery, distance) in enumerate(rows):
        f.write(("," if n else "") + "\n" + json.dumps({"query": query, "rank": rank, "gallery": gallery,
                                                        "distance": distance}))
    f.write("\n]\n")
