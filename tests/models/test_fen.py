"""FEN: shapes per backbone, last stride, BNNeck, weight loading from local files."""
import pytest
import torch
import torchvision
from shared_data import shared_path

from reidgraph.models import ARCHS, FEN, FENOutput


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(4, 3, 64, 32)


@pytest.mark.parametrize("arch,dim", [("resnet18", 512), ("mobilenet_v2", 1280)])
def test_output_shapes(arch, dim, images):
    fen = FEN(arch, num_classes=7)
    out = fen(images)
    assert isinstance(out, FENOutput) and fen.dim == dim
    assert out.feat.shape == out.feat_bn.shape == (4, dim)
    assert out.logits.shape == (4, 7)


def test_resnet50_structure_without_forward():
    fen = FEN("resnet50", num_classes=3)
    assert fen.dim == 2048 and fen.neck.num_features == 2048
    assert fen.classifier.weight.shape == (3, 2048)
    block = fen.body.layer4[0]
    assert block.conv2.stride == (1, 1) and block.downsample[0].stride == (1, 1)
    assert FEN("resnet50", last_stride=2).body.layer4[0].conv2.stride == (2, 2)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_last_stride_one_doubles_the_final_map(arch, images):
    small = FEN(arch, last_stride=2).feature_map(images)
    large = FEN(arch, last_stride=1).feature_map(images)
    assert small.shape[2:] == (2, 1)
    assert large.shape[2:] == (2 * small.shape[2], 2 * small.shape[3])


def test_feat_is_the_pooled_feature_map(images):
    fen = FEN("resnet18").eval()
    with torch.no_grad():
        out = fen.outputs(images)
        assert torch.allclose(out.feat, fen.feature_map(images).mean(dim=(2, 3)))
        assert torch.allclose(out.feat_bn, fen.neck(out.feat))


def test_eval_mode_returns_the_bnneck_feature_tensor(images):
    fen = FEN("resnet18", num_classes=3)
    assert isinstance(fen(images), FENOutput)  # training mode: everything the losses need
    fen.eval()
    with torch.no_grad():
        feat = fen(images)
        assert type(feat) is torch.Tensor and feat.shape == (4, 512)
        assert torch.equal(feat, fen.outputs(images).feat_bn)


def test_bnneck_bias_frozen_at_zero_and_no_classifier_bias():
    fen = FEN("resnet18", num_classes=5)
    assert not fen.neck.bias.requires_grad and torch.equal(fen.neck.bias, torch.zeros(512))
    assert fen.neck.weight.requires_grad
    assert fen.classifier.bias is None
    assert not any(p is fen.neck.bias for p in fen.parameters() if p.requires_grad)


def test_no_classifier_gives_no_logits(images):
    fen = FEN("mobilenet_v2")
    assert fen.classifier is None and fen(images).logits is None


def test_eval_mode_is_deterministic(images):
    fen = FEN("resnet18", num_classes=3).eval()
    with torch.no_grad():
        a, b = fen.outputs(images), fen.outputs(images)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_config_round_trip():
    fen = FEN("resnet18", num_classes=9, last_stride=2)
    assert fen.config() == {"arch": "resnet18", "num_classes": 9, "last_stride": 2}
    again = FEN.from_config(fen.config())
    again.load_state_dict(fen.state_dict())
    assert again.config() == fen.config()


def test_loads_a_torchvision_state_dict(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    fen = FEN("resnet18", num_classes=4, weights=path)
    own = fen.body.state_dict()
    for key, value in net.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(own[key], value), key


def test_wrong_architecture_file_names_it(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"mobilenet\.pth.*resnet18.*another architecture"):
        FEN("resnet18", weights=path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        FEN("resnet18", weights=tmp_path / "nowhere.pth")


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        FEN("resnet18", weights=path)


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "vgg16"}, "resnet50, resnet18, mobilenet_v2"),
    ({"arch": "resnet18", "num_classes": -1}, "num_classes"),
    ({"arch": "resnet18", "last_stride": 3}, "last_stride"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FEN(**kwargs)


def test_bad_image_shape():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        FEN("resnet18")(torch.randn(3, 64, 32))


def test_archs_listed():
    assert ARCHS == ("resnet50", "resnet18", "mobilenet_v2")


@pytest.mark.slow
def test_loads_imagenet_mobilenet_v2_features():
    weights = shared_path("weights", "mobilenet_v2_imagenet_features.pt", what="weights")
    fen = FEN("mobilenet_v2", weights=weights).eval()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    own = fen.body.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    with torch.no_grad():
        out = fen.outputs(torch.randn(2, 3, 128, 64))
    assert torch.isfinite(out.feat).all() and (out.feat >= 0).all()
