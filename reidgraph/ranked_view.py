"""What a ranked-list picture or page shows: each query beside its top gallery images, one row per ranked list.

Every image is a :class:`Tile`: its file, what it is to the query (its frame) and a caption of
:data:`CAPTION_LINES` lines. As in evaluation (:mod:`reidgraph.evaluation.rank`), gallery images of the
query's identity taken by the query's camera, and junk (pid ``-1``), are ignored: they are marked
``ignored``, neither match nor non-match.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .features import FeatureSet

QUERY, MATCH, MISS, IGNORED, UNLABELLED = "query", "match", "non-match", "ignored", "unlabelled"
FRAMES = {QUERY: (60, 90, 200), MATCH: (40, 170, 60), MISS: (210, 50, 50), IGNORED: (110, 110, 110),
          UNLABELLED: (215, 215, 215)}
"""The frame colour (RGB) of each kind of tile."""
CAPTION_LINES = 3


@dataclass(frozen=True)
class Tile:
    """One image: its file ``path``, its ``kind`` (a key of :data:`FRAMES`) and :data:`CAPTION_LINES` caption lines."""

    path: str
    kind: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class QueryBlock:
    """One query: its tile, and for each ranked list (name -> tiles, best first) its top gallery images."""

    query: Tile
    lists: dict[str, list[Tile]]


def images_under(features: FeatureSet, source: str, root: str | Path) -> list[str]:
    """The ``N`` image files of ``features``, each of its ``paths`` under ``root`` (absolute ones as they are).

    A one-line ``ValueError`` names ``source`` where the features have no paths or an image is missing.
    """
    if features.paths is None:
        raise ValueError(f"{source} has no paths; showing ranked lists needs each row's image: save the features "
                         "with a paths field (reidgraph extract writes one)")
    files = [Path(root) / p for p in features.paths]
    missing = next((row for row, file in enumerate(files) if not file.is_file()), None)
    if missing is not None:
        raise ValueError(f"{source}: image {features.paths[missing]!r} (row {missing}) is not under --root {root} "
                         f"({files[missing]} does not exist); pass the folder its paths are relative to as --root")
    return [str(file) for file in files]


def ranked_view(query: FeatureSet, gallery: FeatureSet, lists: dict[str, tuple[np.ndarray, np.ndarray | None]],
                chosen: Sequence[int], top: int, images: dict[str, Sequence] | None = None) -> list[QueryBlock]:
    """The blocks of the ``chosen`` queries.

    Tiles are framed by ``pids`` and ``camids`` where both sets have them (else :data:`UNLABELLED`) and
    captioned with rank, distance, camera and kind.

    Args:
        query, gallery: features whose ``paths`` are image files.
        lists: name -> ``(index [Q, >= top], distance [Q, >= top] or None)``: gallery rows best first and
            their distances, per query row.
        chosen: the query rows shown, in order.
        top: ranks shown per list.
        images: ``{"query": files, "gallery": files}``, the image file of each row where it is not its
            ``paths`` entry (e.g. those entries under a root folder); a side left out shows its ``paths``.
    """
    query_images = (images or {}).get("query", query.paths)
    gallery_images = (images or {}).get("gallery", gallery.paths)
    labelled = query.pids is not None and gallery.pids is not None
    cameras = query.camids is not None and gallery.camids is not None
    blocks = []
    for q in chosen:
        qpid = int(query.pids[q]) if labelled else None
        qcam = int(query.camids[q]) if query.camids is not None else None
        head = (f"query {q}", "" if qpid is None else f"id {qpid}", "" if qcam is None else f"cam {qcam}")
        rows = {}
        for name, (index, distance) in lists.items():
            tiles = []
            for rank, g in enumerate(np.asarray(index[q][:top]).tolist()):
                gcam = int(gallery.camids[g]) if gallery.camids is not None else None
                kind = UNLABELLED if qpid is None else tile_kind(qpid, qcam if cameras else None,
                                                                 int(gallery.pids[g]), gcam)
                score = "" if distance is None else f" {float(distance[q][rank]):.3f}"
                lines = (f"#{rank + 1}{score}", "" if gcam is None else f"cam {gcam}",
                         "" if kind == UNLABELLED else kind)
                tiles.append(Tile(gallery_images[g], kind, lines))
            rows[name] = tiles
        blocks.append(QueryBlock(Tile(query_images[q], QUERY, head), rows))
    return blocks


def tile_kind(qpid: int, qcam: int | None, gpid: int, gcam: int | None) -> str:
    """:data:`IGNORED` for junk and the query's identity in the query's camera (when cameras are known), else
    :data:`MATCH` or :data:`MISS`."""
    if gpid == -1 or (gpid == qpid and qcam is not None and gcam == qcam):
        return IGNORED
    return MATCH if gpid == qpid else MISS
