from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FEATURES = SHARED / "features" / "osnet_x0_25_msmt17"


@pytest.fixture
def shared_features():
    """The real CUHK03-labeled features in ../shared (train, val); skip where absent."""
    from reidgraph.features import FeatureSet

    paths = [FEATURES / f"cuhk03_labeled_{split}.npz" for split in ("train", "val")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"real features not found: {', '.join(missing)} (they live in ../shared beside the checkout)")
    return tuple(FeatureSet.load(p) for p in paths)
