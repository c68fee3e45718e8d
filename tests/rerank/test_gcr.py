"""GCR / GCRV against a step-by-step numpy float64 transcription of the authors' public gcrv.py
(benchmarks/gcrv_public.py), on generated data with exact ties, a camera with one image, and many tiles."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reidgraph.rerank import gcr, gcrv, rerank
from reidgraph.rerank.propagation import neighbor_lists

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gcrv_public  # noqa: E402


def tied_items(n=70, seed=0):
    """``n`` 8-d unit features with four entries of +-1/2 (norm exactly 1, every product a multiple of 1/4:
    exact ties everywhere) and camera ids in 0..2, item 25 alone on camera 9."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 8))
    for row in x:
        row[rng.choice(8, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    cams = rng.integers(0, 3, n)
    cams[25] = 9
    return x, cams


def clustered_items(n=90, seed=0):
    """``n`` 8-d clustered unit features (exactly normalised by the transcription's own rule) and cameras 0..3."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, 8))
    x = gcrv_public.unit(centres[rng.integers(0, 12, n)] + 0.7 * rng.normal(size=(n, 8)))
    return x, rng.integers(0, 4, n)


def ours(method, x, cams, Q, **params):
    return method(torch.tensor(x[:Q]), torch.tensor(x[Q:]), cams[:Q], cams[Q:], **params).dense().numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [16, 1000])
def test_gcr_equals_the_public_code_with_exact_ties(seed, chunk_size):
    x, cams = tied_items(seed=seed)
    assert len(np.unique(x @ x.T)) <= 9  # every similarity is one of a few values
    reference = gcrv_public.gcrv(x[:15], cams[:15], x[15:], cams[15:], pvg_enabled=False)
    np.testing.assert_allclose(ours(gcr, x, cams, 15, chunk_size=chunk_size), reference, atol=1e-12)


@pytest.mark.parametrize("params", [dict(), dict(k1=4, k2=2, beta1=0.1, beta2=0.5, scale=0.6, rounds=2),
                                    dict(k1=1, k2=1, rounds=1), dict(k1=90, k2=40, scale=1.0),
                                    dict(scale=0.0, rounds=5)])
def test_gcr_equals_the_public_code(params):
    x, cams = clustered_items()
    cams[7] = 5  # a camera with one image
    public = {"k1": 15, "k2": 3, "beta1": 0.2, "beta2": 0.2, "scale": 0.3, "rounds": 3, **params}
    reference = gcrv_public.gcrv(x[:20], cams[:20], x[20:], cams[20:], pvg_enabled=False, **public)
    np.testing.assert_allclose(ours(gcr, x, cams, 20, chunk_size=7, **params), reference, atol=1e-12)


def test_gcrv_ranks_as_the_public_code():
    """De-biasing runs in float32 (the transcription in float64): distances within 1e-5, orders equal."""
    x, cams = clustered_items(n=160, seed=3)
    x = np.hstack([x, 0.3 * np.random.default_rng(0).normal(size=(160, 24))])  # 32-d: D < a camera's images
    reference = gcrv_public.gcrv(x[:30], cams[:30], x[30:], cams[30:])
    got = ours(gcrv, x, cams, 30, min_images=1)
    np.testing.assert_allclose(got, reference, atol=1e-5)
    assert (np.argsort(got, 1, kind="stable")[:, :10] == np.argsort(reference, 1, kind="stable")[:, :10]).mean() > 0.99


def test_cross_camera_list_is_short_where_other_cameras_hold_too_few_items():
    """The documented reading: no same-camera filler (the authors' similarity -2 items)."""
    x = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1)
    cams = torch.tensor([0] * 11 + [1])
    (_, global_idx), (_, cross_idx) = neighbor_lists(x, cams, (3, 3), 5)
    for i in range(11):  # itself and item 11, the only other-camera item; the third place empty
        assert sorted(cross_idx[i].tolist()) == sorted([i, 11, -1, -1])
    assert (cross_idx[11, :3] >= 0).all() and (global_idx[:, :3] >= 0).all()


def test_neighbor_lists_certified_against_a_full_float64_sort():
    """Many tiles, the row itself appended only where its own top k misses it (duplicates of it come first)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(300, 16, generator=gen, dtype=torch.float64), dim=1)
    x[10] = x[3]  # an exact duplicate: row 10's top 1 is row 3, and it is appended itself
    cams = torch.randint(0, 3, (300,), generator=gen)
    (sim, idx), (csim, cidx) = neighbor_lists(x, cams, (1, 4), 64)
    full = x @ x.T
    assert idx[10].tolist() == [3, 10] and idx[3].tolist() == [3, -1]
    best = full.masked_fill((cams[:, None] == cams[None]) & ~torch.eye(300, dtype=torch.bool), -float("inf"))
    for i in range(300):
        expected = sorted(range(300), key=lambda j: (-float(best[i, j]), j))[:4]
        assert cidx[i, :4].tolist() == expected
        torch.testing.assert_close(csim[i, :4], best[i, expected])


def test_registry_runs_gcr_and_gcrv_as_peers():
    x, cams = clustered_items()
    q, g = torch.tensor(x[:20]), torch.tensor(x[20:])
    for name, method in (("gcr", gcr), ("gcrv", gcrv)):
        got = rerank(name, q, g, query_camids=cams[:20], gallery_camids=cams[20:], params={"k1": 5})
        torch.testing.assert_close(got.dense(), method(q, g, cams[:20], cams[20:], k1=5).dense())


@pytest.mark.parametrize("method", [gcr, gcrv])
def test_one_line_errors(method):
    x, cams = clustered_items()
    q, g = torch.tensor(x[:20]), torch.tensor(x[20:])
    with pytest.raises(ValueError, match="gallery_camids is missing"):
        method(q, g, cams[:20], None)
    with pytest.raises(ValueError, match="k1=0 is outside"):
        method(q, g, cams[:20], cams[20:], k1=0)
    with pytest.raises(ValueError, match="beta2=0 must be a positive number"):
        method(q, g, cams[:20], cams[20:], beta2=0)
    with pytest.raises(ValueError, match="scale=2 is outside"):
        method(q, g, cams[:20], cams[20:], scale=2)


def test_bfloat16_screen_gives_the_same_lists(monkeypatch):
    """Where bfloat16 is fast the screen runs in it (certified with its wider rounding bound): same lists."""
    import reidgraph.rerank.propagation as propagation

    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(20, 256, generator=gen)
    x = torch.nn.functional.normalize(centres[torch.randint(0, 20, (400,), generator=gen)]
                                      + 1.5 * torch.randn(400, 256, generator=gen), dim=1)
    cams = torch.randint(0, 4, (400,), generator=gen)
    exact = neighbor_lists(x, cams, (15, 3), 128)
    monkeypatch.setattr(propagation, "fast_bfloat16", lambda device_type: True)
    screened = neighbor_lists(x, cams, (15, 3), 128)
    for (sim, idx), (sim_b, idx_b) in zip(exact, screened):
        assert torch.equal(idx, idx_b)
        torch.testing.assert_close(sim, sim_b)
