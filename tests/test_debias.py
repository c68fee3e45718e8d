"""Per-camera de-biasing against a hand computation, its fallbacks, and as the first stage of any method."""
import numpy as np
import pytest
import torch

from reidgraph.debias import debias, debias_set
from reidgraph.rerank import parameters, rerank


def items(n=60, dim=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    cams = torch.randint(0, 3, (n,), generator=gen)
    return x, cams


def by_hand(x, reference, ridge):
    """``P (x - mu) / |P (x - mu)|`` with ``P = inv(X^T X + n ridge I)`` of unit rows ``X``, in numpy."""
    X = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    u = x / np.linalg.norm(x)
    y = np.linalg.inv(X.T @ X + len(X) * ridge * np.eye(X.shape[1])) @ (u - X.mean(axis=0))
    return y / np.linalg.norm(y)


def test_debias_equals_a_hand_computation():
    x, cams = items()
    q, g, qc, gc = x[:10], x[10:], cams[:10], cams[10:]
    got_q, got_g = debias(q, g, qc, gc, ridge=0.5, min_images=1)
    assert got_q.dtype == torch.float64
    for feats, cam, got in ((q, qc, got_q), (g, gc, got_g)):
        for i in range(len(feats)):
            expected = by_hand(feats[i].numpy(), g[gc == cam[i]].numpy(), 0.5)
            np.testing.assert_allclose(got[i].numpy(), expected, atol=1e-5)


def test_hand_example_two_dimensions():
    """Camera 0 holds (1, 0) and (0, 1): mean (1/2, 1/2), X^T X = I, P = I / (1 + 2 ridge); with ridge 1/2, the
    query (1, 0) becomes P (1/2, -1/2) = (1/4, -1/4), normalised (1, -1) / sqrt 2."""
    q, g = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got_q, got_g = debias(q, g, [0], [0, 0], ridge=0.5, min_images=1)
    torch.testing.assert_close(got_q, torch.tensor([[1.0, -1.0]]) / 2**0.5)
    torch.testing.assert_close(got_g, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) / 2**0.5)


def test_small_and_unseen_cameras_use_the_whole_gallery():
    x, cams = items()
    q, g, qc, gc = x[:10], x[10:], cams[:10].clone(), cams[10:].clone()
    gc[0] = 7  # a gallery camera with one image
    qc[0] = 8  # a query camera the gallery never saw
    got_q, got_g = debias(q, g, qc, gc, ridge=10.0, min_images=2)
    for got, feats in ((got_q[0], q[0]), (got_g[0], g[0])):
        np.testing.assert_allclose(got.numpy(), by_hand(feats.numpy(), g.numpy(), 10.0), atol=1e-5)
    assert torch.isfinite(got_g).all()
    # with min_images above every camera's count, every image uses the whole gallery
    whole_q, _ = debias(q, g, qc, gc, min_images=1000)
    np.testing.assert_allclose(whole_q[3].numpy(), by_hand(q[3].numpy(), g.numpy(), 10.0), atol=1e-5)


def test_debias_set_is_its_own_gallery():
    x, cams = items()
    torch.testing.assert_close(debias_set(x, cams), debias(x[:0 + 1], x, cams[:1], cams)[1])


@pytest.mark.parametrize("method", ["k-reciprocal", "ecn", "gcr", "fusion-paper+ecn", "cosine"])
def test_a_composition_with_debias_equals_debiasing_the_files_first(method):
    x, cams = items(n=80, dim=8, seed=1)
    q, g, qc, gc = x[:16], x[16:], cams[:16], cams[16:]
    small = {"fusion-paper.K": 20, "fusion-paper.k": 6, "fusion-paper.tau": 6} if "fusion" in method else {}
    first_q, first_g = debias(q, g, qc, gc)
    expected = rerank(method, first_q, first_g, query_camids=qc, gallery_camids=gc, params=small).dense()
    prefixed = {f"{k}": v for k, v in small.items()}
    name = "debias" if method == "cosine" else f"debias+{method}"
    got = rerank(name, q, g, query_camids=qc, gallery_camids=gc, params=prefixed).dense()
    torch.testing.assert_close(got, expected)


def test_debias_parameters_route_by_name():
    assert parameters("debias") == {"ridge": 10.0, "min_images": 20}
    assert parameters("debias+ecn")["debias.ridge"] == 10.0
    x, cams = items()
    got = rerank("debias+ecn", x[:10], x[10:], query_camids=cams[:10], gallery_camids=cams[10:],
                 params={"ridge": 1.0, "ecn.k": 5}).dense()
    q, g = debias(x[:10], x[10:], cams[:10], cams[10:], ridge=1.0)
    torch.testing.assert_close(got, rerank("ecn", q, g, params={"k": 5}).dense())


def test_bad_input_one_line():
    x, cams = items()
    with pytest.raises(ValueError, match="needs the camera id of every query and gallery image"):
        rerank("debias+ecn", x[:10], x[10:])
    with pytest.raises(ValueError, match="gallery_camids is missing; de-biasing needs"):
        debias(x[:10], x[10:], cams[:10], None)
    with pytest.raises(ValueError, match="ridge=0 must be a positive number"):
        debias(x[:10], x[10:], cams[:10], cams[10:], ridge=0)
    with pytest.raises(ValueError, match="min_images=0 is outside"):
        debias_set(x, cams, min_images=0)
    with pytest.raises(ValueError, match="unknown method 'debias\\+debias'"):
        rerank("debias+debias", x[:10], x[10:], query_camids=cams[:10], gallery_camids=cams[10:])
