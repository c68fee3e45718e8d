"""The camera ids camera-aware graphs need, checked once for anchors and candidates."""
from __future__ import annotations

from .._checks import camera_ids
from .settings import GraphSettings


def graph_camids(settings: GraphSettings, anchor_camids, candidate_camids, num_anchors: int,
                 num_candidates: int, anchors: str = "query", candidates: str = "gallery", remedy: str | None = None):
    """Checked ``[Q]`` / ``[G]`` camera ids for camera-aware ``settings`` (``(None, None)`` otherwise); ``remedy``
    replaces the missing cameras' advice (``pass {anchors}_camids and {candidates}_camids``)."""
    if not settings.camera_aware:
        return None, None
    missing = (f"same_camera_weight={settings.same_camera_weight} builds camera-aware graphs, which need "
               f"the camera of every image: {remedy or f'pass {anchors}_camids and {candidates}_camids'}")
    return (camera_ids(anchor_camids, num_anchors, f"{anchors}_camids", anchors, missing),
            camera_ids(candidate_camids, num_candidates, f"{candidates}_camids", candidates, missing))
