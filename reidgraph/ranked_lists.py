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


def list_format(path: Path, what: str, fix: str) -> str:
    """The :data:`LIST_FORMATS` entry ``path``'s extension names, or a one-line ``ValueError``:
    ``"{what}: unknown extension ...; {fix}"`` (``fix`` may name the extensions, ``{extensions}``)."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in LIST_FORMATS:
        extensions = ", ".join("." + f for f in LIST_FORMATS)
        raise ValueError(f"{what}: unknown extension {path.suffix or '(none)'!r}; {fix.format(extensions=extensions)}")
    return kind


def output_format(path: str | Path) -> str:
    """The format of an output path by its extension; a one-line error for an unknown one or a missing folder."""
    path = Path(path)
    kind = list_format(path, f"--out {path}", "end the name in {extensions}")
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


def read_ranked(path: str | Path, query_paths: Sequence[str], gallery_paths: Sequence[str]) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """Each query's ranked list from a file :func:`write_ranked` wrote, checked against the features it ranked.

    Queries and gallery items are found by row number, or by path where the file holds paths. The file must
    rank every query once, list as many items for each, point only at gallery rows, and (``.npz``) store the
    same paths as the features, or a one-line ``ValueError`` names the file and what disagrees.

    Args:
        path: a ``.npz``, ``.csv`` or ``.json`` ranked file.
        query_paths, gallery_paths: the ``Q`` query and ``G`` gallery image paths, in the features' row order.

    Returns:
        ``(index [Q, top] int64, distance [Q, top] float32)``: gallery rows, best first, and their distances.
    """
    path = Path(path)
    kind = list_format(path, f"ranked file {path}", "pass the {extensions} file `reidgraph rerank --out` wrote")
    if not path.is_file():
        raise FileNotFoundError(f"ranked file {path} does not exist; write it with `reidgraph rerank --out {path}`")
    fix = "pass the query and gallery features it was ranked from"
    try:
        if kind == "npz":
            index, distance = read_npz_lists(path, query_paths, gallery_paths, fix)
        else:
            index, distance = lists_of_rows(read_rows(path, kind), query_paths, gallery_paths, fix)
    except ValueError as err:
        raise ValueError(f"ranked file {path}: {err}") from None
    if len(index) != len(query_paths):
        raise ValueError(f"ranked file {path} ranks {len(index)} queries but the query features hold "
                         f"{len(query_paths)}; {fix}")
    if index.size and not 0 <= index.min() <= index.max() < len(gallery_paths):
        raise ValueError(f"ranked file {path} lists gallery row {index.max() if index.min() >= 0 else index.min()} "
                         f"but the gallery features hold {len(gallery_paths)} rows; {fix}")
    return index, distance


def read_npz_lists(path: Path, query_paths: Sequence[str], gallery_paths: Sequence[str],
                   fix: str) -> tuple[np.ndarray, np.ndarray]:
    """``index`` and ``distance`` of a ranked ``.npz``, its stored paths (if any) compared with the features'."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as err:  # a truncated or foreign file: zipfile, pickle and format errors alike
        raise ValueError(f"not a readable npz ({type(err).__name__}); pass the file `reidgraph rerank` wrote") from None
    missing = [name for name in ("index", "distance") if name not in arrays]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}; pass the file `reidgraph rerank --out ranked.npz` wrote")
    index, distance = arrays["index"], arrays["distance"]
    if index.ndim != 2 or distance.shape != index.shape or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"index {index.shape} and distance {distance.shape} must be integer [Q, top] and "
                         "float [Q, top]; pass the file `reidgraph rerank` wrote")
    for name, paths in (("query_paths", query_paths), ("gallery_paths", gallery_paths)):
        if name in arrays:
            same_paths(arrays[name].tolist(), list(paths), name, fix)
    return index.astype(np.int64), distance.astype(np.float32)


def same_paths(stored: list[str], given: list[str], name: str, fix: str) -> None:
    """A one-line ``ValueError`` where the ``stored`` paths of a ranked file are not the features' ``given`` ones."""
    side = name.split("_")[0]
    if len(stored) != len(given):
        raise ValueError(f"its {name} name {len(stored)} images but the {side} features hold {len(given)}; {fix}")
    row = next((r for r, (a, b) in enumerate(zip(stored, given)) if a != b), None)
    if row is not None:
        raise ValueError(f"its {name} differ from the {side} features' paths (row {row}: {stored[row]!r} vs "
                         f"{given[row]!r}); {fix}")


def read_rows(path: Path, kind: str) -> list[tuple]:
    """The ``(query, rank, gallery, distance)`` rows of a ranked ``.csv`` or ``.json``, as written."""
    keys = ("query", "rank", "gallery", "distance")
    try:
        if kind == "csv":
            with path.open(newline="", encoding="utf-8") as f:
                header, *body = [row for row in csv.reader(f) if row] or [[]]
            if header != list(keys):
                raise ValueError(f"its header is {','.join(header) or '(none)'}, not {','.join(keys)}")
            rows = [tuple(row) for row in body]
        else:
            rows = [tuple(item[k] for k in keys) for item in json.loads(path.read_text(encoding="utf-8"))]
        return [(query, int(rank), gallery, float(distance)) for query, rank, gallery, distance in rows]
    except (ValueError, TypeError, KeyError) as err:
        reason = str(err).split("\n")[0][:120] if isinstance(err, ValueError) else f"{type(err).__name__} {err}"
        raise ValueError(f"not a ranked {kind} file ({reason}); pass the file `reidgraph rerank` wrote") from None


def lists_of_rows(rows: list[tuple], query_paths: Sequence[str], gallery_paths: Sequence[str],
                  fix: str) -> tuple[np.ndarray, np.ndarray]:
    """``(index [Q, top], distance [Q, top])`` from ``(query, rank, gallery, distance)`` rows, by query row number."""
    queries, gallery = row_finder(query_paths, "query", fix), row_finder(gallery_paths, "gallery", fix)
    lists: dict[int, list[tuple[int, int, float]]] = {}
    for query, rank, item, distance in rows:
        lists.setdefault(queries(query), []).append((rank, gallery(item), distance))
    tops = {len(items) for items in lists.values()}
    if len(tops) > 1:
        raise ValueError(f"lists {min(tops)} to {max(tops)} items per query, not one length; {fix}")
    expected = set(range(len(query_paths)))
    if set(lists) != expected:
        odd = min(set(lists) ^ expected)
        raise ValueError(f"ranks {len(lists)} queries but the query features hold {len(query_paths)} (query row "
                         f"{odd} {'is missing' if odd in expected else 'is not among them'}); {fix}")
    ordered = [sorted(lists[q]) for q in range(len(lists))]
    top = tops.pop() if tops else 0
    index = np.array([[g for _, g, _ in items] for items in ordered], dtype=np.int64).reshape(len(lists), top)
    distance = np.array([[d for _, _, d in items] for items in ordered], dtype=np.float32).reshape(len(lists), top)
    return index, distance


def row_finder(paths: Sequence[str], side: str, fix: str):
    """A function from a ranked file's entry (a path of ``paths``, or a row number) to its row number."""
    rows = {p: r for r, p in enumerate(paths)}

    def find(entry) -> int:
        if isinstance(entry, str) and entry in rows:
            return rows[entry]
        if isinstance(entry, int) or (isinstance(entry, str) and entry.isdigit()):
            return int(entry)
        raise ValueError(f"its {side} {entry!r} is not an image of the {side} features; {fix}")
    return find
