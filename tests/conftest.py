from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FEATURE_SETS = ("osnet_x0_25_msmt17", "omz_0277")


@pytest.fixture(params=FEATURE_SETS)
def shared_features(request):
    """The real CUHK03-labeled features in ../shared (train, val) of each shared model; skip where absent."""
    from reidgraph.features import FeatureSet

    paths = [SHARED / "features" / request.param / f"cuhk03_labeled_{split}.npz" for split in ("train", "val")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"real features not found: {', '.join(missing)} (they live in ../shared beside the checkout)")
    return tuple(FeatureSet.load(p) for p in paths)


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory):
    """A tiny generated Market-1501-style folder: 6 train and 6 test identities, 32x16 images."""
    from reidgraph.data.synthetic_images import make_synthetic_market

    return make_synthetic_market(tmp_path_factory.mktemp("market"), num_train_ids=6, num_test_ids=6,
                                 images_per_id=5, num_cams=3, height=32, width=16, seed=0)


TINY_TRAIN = ["--arch", "resnet18", "--height", "32", "--width", "16", "--P", "4", "--images-per-id", "2",
              "--workers", "0", "--K", "10", "--k", "3", "--tau", "3", "--quiet"]
