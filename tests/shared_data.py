"""The one way tests reach the shared data (real features, datasets, weights), which the package does not ship.

The shared folder is ``$REIDGRAPH_SHARED`` where set, else ``shared`` beside the checkout. A test asks for a
path under it with :func:`shared_path`, which skips the test, saying where it looked, when the path is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "REIDGRAPH_SHARED"
FEATURE_SETS = ("osnet_x0_25_msmt17", "omz_0277")
"""The feature folders under ``SHARED/features``, one per backbone."""


def shared_root() -> Path:
    """``$REIDGRAPH_SHARED``, else the ``shared`` folder beside the checkout."""
    value = os.environ.get(ENV)
    return Path(value) if value else Path(__file__).resolve().parents[2] / "shared"


def shared_path(*parts: str, what: str = "shared data") -> Path:
    """The path ``SHARED/<parts...>``; skip the calling test where it does not exist."""
    path = shared_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{what} not found: {path} (set {ENV} to the shared data folder, or put it at "
                    "../shared beside the checkout)")
    return path


def shared_features_path(feature_set: str, split: str) -> Path:
    """``SHARED/features/<feature_set>/cuhk03_labeled_<split>.npz``; skip where absent."""
    return shared_path("features", feature_set, f"cuhk03_labeled_{split}.npz", what="real features")
