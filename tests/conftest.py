import pytest
from shared_data import FEATURE_SETS, shared_features_path


@pytest.fixture(params=FEATURE_SETS)
def shared_features(request):
    """The real CUHK03-labeled features (train, val) of each shared model; skip where absent (tests/shared_data.py)."""
    from reidgraph.features import FeatureSet

    return tuple(FeatureSet.load(shared_features_path(request.param, split)) for split in ("train", "val"))


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory):
    """A tiny generated Market-1501-style folder: 6 train and 6 test identities, 32x16 images."""
    from reidgraph.data.synthetic_images import make_synthetic_market

    return make_synthetic_market(tmp_path_factory.mktemp("market"), num_train_ids=6, num_test_ids=6,
                                 images_per_id=5, num_cams=3, height=32, width=16, seed=0)
