"""Paper eqs. (2)-(10), §3.2 "Edge Setting", against plain loop references written here."""
import math

import pytest
import torch

from reidgraph.graph import (cosine_similarity, neighborhood_adjacency, normalize_adjacency,
                             soft_jaccard, topk_members)


def ref_adjacency(x, k, lam, tau, edges="joint", mask=True, cams=None, w=1.0):
    """The paper's equations, one scalar at a time, for one graph x [n, D]; with cameras ``cams``,
    similarities of distinct same-camera nodes are first multiplied by ``w`` (camera-aware graphs)."""
    x = x.double().tolist()
    n = len(x)
    norm = [math.sqrt(sum(v * v for v in xi)) for xi in x]
    C = [[sum(a * b for a, b in zip(x[i], x[j])) / (norm[i] * norm[j]) for j in range(n)] for i in range(n)]
    for i in range(n):
        C[i][i] = 1.0
        for j in range(n):
            if cams is not None and i != j and cams[i] == cams[j]:
                C[i][j] *= w
    # top-k(i): itself first, then by similarity, ties by lower index.
    top = [[i] + sorted((j for j in range(n) if j != i), key=lambda j: (-C[i][j], j))[:k - 1] for i in range(n)]
    R = [[j in top[i] and i in top[j] for j in range(n)] for i in range(n)]
    # Negative cosines carry no Jaccard weight (v >= 0 keeps D in [0, 1]).
    V = [[max(C[i][j], 0.0) if R[i][j] else 0.0 for j in range(n)] for i in range(n)]
    D = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            num = sum(min(V[i][l], V[j][l]) for l in range(n))
            den = sum(max(V[i][l], V[j][l]) for l in range(n))
            D[i][j] = num / den if den != 0 else 0.0
    A = [[(lam * D[i][j] + (1 - lam) * C[i][j]) if edges == "joint" else C[i][j] for j in range(n)]
         for i in range(n)]
    A = [[max(a, 0.0) for a in row] for row in A]
    if mask:
        for i in range(n):
            kth = sorted(A[i], reverse=True)[tau - 1]
            A[i] = [a if a >= kth else 0.0 for a in A[i]]
    deg = [sum(row) for row in A]
    S = [[A[i][j] / math.sqrt(deg[i] * deg[j]) for j in range(n)] for i in range(n)]
    return tuple(torch.tensor(m, dtype=torch.float64) for m in (C, D, A, S))


def random_graphs(B, n, D=6, seed=0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, n, D, generator=g, dtype=torch.float64) + offset


@pytest.mark.parametrize("n,k,tau,lam,offset", [(12, 4, 5, 0.7, 0.0), (25, 6, 8, 0.3, 0.5),
                                                 (40, 20, 20, 0.7, 1.0), (10, 10, 10, 1.0, 0.0),
                                                 (15, 1, 1, 0.0, 0.0)])
def test_matches_loop_reference(n, k, tau, lam, offset):
    x = random_graphs(3, n, seed=n, offset=offset)
    A = neighborhood_adjacency(x, k=k, lam=lam, tau=tau)
    S = normalize_adjacency(A)
    for b in range(3):
        C, D, A_ref, S_ref = ref_adjacency(x[b], k, lam, tau)
        assert torch.allclose(cosine_similarity(x[b:b + 1])[0], C, atol=1e-12)
        assert torch.allclose(soft_jaccard(cosine_similarity(x[b:b + 1]), k)[0], D, atol=1e-12)
        assert torch.allclose(A[b], A_ref, atol=1e-12)
        assert torch.allclose(S[b], S_ref, atol=1e-12)


@pytest.mark.parametrize("edges,mask", [("cosine", True), ("joint", False), ("cosine", False)])
def test_ablations_match_reference(edges, mask):
    x = random_graphs(2, 18, seed=3)
    A = neighborhood_adjacency(x, k=5, lam=0.7, tau=6, edges=edges, mask=mask)
    for b in range(2):
        assert torch.allclose(A[b], ref_adjacency(x[b], 5, 0.7, 6, edges, mask)[2], atol=1e-12)


@pytest.mark.parametrize("w,num_cams", [(0.0, 3), (0.5, 2), (0.0, 1), (0.3, 12)])
def test_camera_aware_matches_loop_reference(w, num_cams):
    n, k, tau, lam = 12, 4, 5, 0.7
    x = random_graphs(2, n, seed=7, offset=0.3)
    cams = torch.randint(num_cams, (2, n), generator=torch.Generator().manual_seed(1))
    A = neighborhood_adjacency(x, k=k, lam=lam, tau=tau, camids=cams, same_camera_weight=w)
    for b in range(2):
        _, _, A_ref, _ = ref_adjacency(x[b], k, lam, tau, cams=cams[b].tolist(), w=w)
        assert torch.allclose(A[b], A_ref, atol=1e-12)
    if num_cams == 1 and w == 0:  # every node on one camera: only the self-loops survive
        assert torch.equal(A[0], torch.diag(A[0].diagonal())) and bool((A[0].diagonal() > 0).all())


def test_camera_weight_one_is_the_paper_and_all_cameras_distinct_changes_nothing():
    x = random_graphs(2, 10, seed=3)
    paper = neighborhood_adjacency(x, k=4, tau=5)
    cams = torch.randint(3, (2, 10))
    assert torch.equal(neighborhood_adjacency(x, k=4, tau=5, camids=cams, same_camera_weight=1.0), paper)
    distinct = torch.arange(10).expand(2, 10)
    assert torch.equal(neighborhood_adjacency(x, k=4, tau=5, camids=distinct, same_camera_weight=0.0), paper)


@pytest.mark.parametrize("kwargs,match", [
    ({"same_camera_weight": 0.0}, "needs each node's camera id: pass camids"),
    ({"same_camera_weight": 1.5, "camids": torch.zeros(2, 8)}, r"same_camera_weight=1.5 is outside \[0, 1\]"),
    ({"same_camera_weight": 0.0, "camids": torch.zeros(2, 7)}, r"one camera per node, shape \[2, 8\], got \[2, 7\]"),
])
def test_camera_aware_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neighborhood_adjacency(random_graphs(2, 8), k=3, tau=3, **kwargs)


def test_float32_close_to_float64():
    x = random_graphs(4, 30, D=16, seed=5, offset=0.3)
    assert torch.allclose(neighborhood_adjacency(x.float(), k=8, tau=8).double(),
                          neighborhood_adjacency(x, k=8, tau=8), atol=1e-5)


def test_hand_computed_four_nodes():
    # Unit vectors at angles 0, 60, 90, 180 degrees: c = cos(angle difference).
    ang = torch.tensor([0.0, 60.0, 90.0, 180.0], dtype=torch.float64) * math.pi / 180
    x = torch.stack([ang.cos(), ang.sin()], dim=1)
    h = 0.5
    C = torch.tensor([[1, h, 0, -1], [h, 1, math.sqrt(3) / 2, -h], [0, math.sqrt(3) / 2, 1, 0], [-1, -h, 0, 1]],
                     dtype=torch.float64)
    assert torch.allclose(cosine_similarity(x[None])[0], C, atol=1e-12)
    # k=2 top lists (itself first): 0:{0,1} 1:{1,2} 2:{2,1} 3:{3,2} (c_32=0 beats c_31=-0.5).
    assert topk_members(C[None], 2)[0].tolist() == [[0, 1], [1, 2], [2, 1], [3, 2]]
    # Reciprocal sets: R(0)={0}, R(1)={1,2}, R(2)={2,1}, R(3)={3}.
    # v rows: v0=(1,0,0,0) v1=(0,1,s,0) v2=(0,s,1,0) v3=(0,0,0,1), s=sqrt(3)/2.
    s = math.sqrt(3) / 2
    D = torch.eye(4, dtype=torch.float64)
    D[1, 2] = D[2, 1] = (s + s) / (1 + 1)  # min: (0, s, s) -> 2s ; max: (1, 1) -> 2
    assert torch.allclose(soft_jaccard(C[None], 2)[0], D, atol=1e-12)
    # lam=0.5, no mask: A = 0.5 D + 0.5 C, negatives clamped.
    A = (0.5 * D + 0.5 * C).clamp(min=0)
    assert torch.allclose(neighborhood_adjacency(x, k=2, lam=0.5, tau=4, mask=False), A, atol=1e-12)
    # tau=2 keeps each row's two largest: row 0 keeps (1, 0.25) and drops the 0 entries.
    masked = neighborhood_adjacency(x, k=2, lam=0.5, tau=2)
    assert masked[0].tolist() == pytest.approx([1.0, 0.25, 0.0, 0.0])
    assert masked[3].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])
    deg = masked.sum(1)
    S = normalize_adjacency(masked)
    assert S[0, 1].item() == pytest.approx(0.25 / math.sqrt(deg[0] * deg[1]))


def test_mask_keeps_ties():
    a = torch.tensor([[[1.0, 0.5, 0.5, 0.2], [0.3, 1.0, 0.3, 0.3], [0.0, 0.0, 1.0, 0.0], [0.1, 0.2, 0.4, 1.0]]])
    from reidgraph.graph import row_topk_mask
    kept = row_topk_mask(a, 2) > 0
    assert kept[0].tolist() == [[True, True, True, False], [True, True, True, True],
                                [False, False, True, False], [False, False, True, True]]


def test_self_loops_survive_and_self_is_rank_zero_with_duplicates():
    x = torch.randn(1, 10, 4, dtype=torch.float64)
    x[0, 5] = x[0, 2]  # an exact duplicate
    assert topk_members(cosine_similarity(x), 3)[0, 5, 0].item() == 5
    A = neighborhood_adjacency(x, k=3, tau=1)
    assert torch.all(A[0].diagonal() > 0.99)


def test_permuting_non_anchor_nodes_permutes_A_and_S():
    x = random_graphs(2, 20, seed=7, offset=0.5)
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(19)])
    # Ties broken by index could differ under permutation; continuous random data has none.
    A, Ap = neighborhood_adjacency(x, k=6, tau=7), neighborhood_adjacency(x[:, perm], k=6, tau=7)
    assert torch.allclose(Ap, A[:, perm][:, :, perm], atol=1e-12)
    assert torch.allclose(normalize_adjacency(Ap), normalize_adjacency(A)[:, perm][:, :, perm], atol=1e-12)


def test_batched_equals_one_by_one():
    x = random_graphs(5, 16, seed=11)
    A = neighborhood_adjacency(x, k=5, tau=6)
    for b in range(5):
        assert torch.allclose(A[b], neighborhood_adjacency(x[b], k=5, tau=6), atol=1e-12)


def test_normalize_handles_zero_degree():
    a = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    assert torch.allclose(normalize_adjacency(a), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(k=0), "k=0 is outside"), (dict(k=11), "k=11 is outside"), (dict(tau=0), "tau=0"),
    (dict(tau=12), "tau=12"), (dict(lam=1.5), r"lam=1.5 is outside \[0, 1\]"), (dict(lam=-0.1), "lam=-0.1"),
    (dict(edges="dense"), "edges='dense' is unknown"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neighborhood_adjacency(torch.randn(2, 10, 4), **{"k": 3, "tau": 3, **kwargs})


def test_bad_features():
    x = torch.randn(2, 10, 4)
    x[1, 3, 2] = float("nan")
    with pytest.raises(ValueError, match="x: 1 feature vector"):
        neighborhood_adjacency(x, k=3, tau=3)
    with pytest.raises(ValueError, match="dimension 0"):
        neighborhood_adjacency(torch.randn(2, 10, 0), k=3, tau=3)


def test_parallel_vectors_of_different_norm_keep_their_self_loop():
    # Rounding made c_01 > c_00 here, and tau=1 then masked node 0's self-loop out.
    x = torch.tensor([[1.0, 0.0, 3.0], [7.0, 0.0, 21.0]], dtype=torch.float64)
    A = neighborhood_adjacency(x, k=2, lam=0.3, tau=1)
    assert torch.all(A.diagonal() > 0)
    assert topk_members(cosine_similarity(x[None]), 2)[0, :, 0].tolist() == [0, 1]


def test_mask_keeps_the_diagonal_even_when_it_is_not_the_row_max():
    from reidgraph.graph import row_topk_mask
    a = torch.tensor([[[0.9, 1.0, 0.2], [0.3, 0.5, 0.4], [0.0, 0.1, 0.0]]])
    kept = row_topk_mask(a, 1) > 0
    assert kept[0].diagonal().tolist() == [True, True, False]  # a_22 = 0 has no weight to keep
    assert (row_topk_mask(a, 1) >= 0).all() and row_topk_mask(a, 1)[0, 0, 0] == 0.9


def test_negative_cosines_keep_jaccard_in_unit_interval():
    # Signed v made the Jaccard denominator ~0: A[6, 9] was 6.0e15.
    e = torch.zeros(6, dtype=torch.float64)
    e[5] = 1
    x = torch.stack([e] * 6 + [-e] * 3 + [torch.tensor([1, 1, 1, 1, 1, -2.0], dtype=torch.float64)])
    A = neighborhood_adjacency(x, k=10, lam=1, tau=10)
    assert A.min() >= 0 and A.max() <= 1
    D = soft_jaccard(cosine_similarity(x[None]), 10)
    assert D.min() >= 0 and D.max() <= 1


def test_normalize_refuses_negative_weights():
    with pytest.raises(ValueError, match="non-negative weights"):
        normalize_adjacency(torch.tensor([[1.0, -0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="non-negative weights"):
        normalize_adjacency(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))


def test_ties_across_the_kth_place_go_to_the_lower_index():
    """Exact ties (repeated integer vectors) at the k-th place: the k-reciprocal sets, hence D, as the loop's
    stable order makes them (the fast top-k set falls back to the sort there)."""
    g = torch.Generator().manual_seed(7)
    base = torch.randint(-3, 4, (5, 6), generator=g).double()
    x = torch.cat([base, base, base[:3]])
    for k in (2, 3, 4, 6):
        _, D, _, _ = ref_adjacency(x, k, 0.7, 5)
        assert torch.allclose(soft_jaccard(cosine_similarity(x[None]), k)[0], D, atol=1e-12)
