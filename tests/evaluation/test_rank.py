import numpy as np
import pytest
import torch

from reidgraph.evaluation import RankMetrics, evaluate_order, evaluate_rank


def reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query loop, as in torchreid's eval_market1501, written out plainly."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    cmcs, aps, inps = [], [], []
    for q in range(num_q):
        ranked = np.argsort(distmat[q], kind="stable")
        kept = [g for g in ranked
                if g_pids[g] != -1 and not (g_pids[g] == q_pids[q] and g_camids[g] == q_camids[q])]
        positions = [i + 1 for i, g in enumerate(kept) if g_pids[g] == q_pids[q]]
        if not positions:
            continue
        cmcs.append([1.0 if positions[0] <= r + 1 else 0.0 for r in range(max_rank)])
        precision_sum = 0.0
        for k, p in enumerate(positions):
            precision_sum += (k + 1) / p
        aps.append(precision_sum / len(positions))
        inps.append(len(positions) / positions[-1])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


# Gallery: 0 pid1 cam0 | 1 pid0 cam1 (distractor) | 2 pid1 cam1 | 3 pid-1 cam1 (junk) | 4 pid2 cam1 | 5 pid1 cam2
G_PIDS = [1, 0, 1, -1, 2, 1]
G_CAMS = [0, 1, 1, 1, 1, 2]
Q_PIDS = [1, 2, 3, 1]
Q_CAMS = [0, 0, 0, 1]
ORDER = [[0, 1, 2, 3, 4, 5],
         [5, 4, 3, 2, 1, 0],
         [0, 1, 2, 3, 4, 5],
         [2, 0, 1, 3, 5, 4]]


def hand_expected():
    # q0 (pid1 cam0): 0 junk (same cam), 1 distractor @1, 2 match @2, 3 junk, 4 @3, 5 match @4.
    ap0, inp0, first0 = (1 / 2 + 2 / 4) / 2, 2 / 4, 2
    # q1 (pid2 cam0): 5 @1, 4 match @2, 3 junk, 2 @3, 1 @4, 0 @5 (pid1 is not junk for pid2).
    ap1, inp1, first1 = 1 / 2, 1 / 2, 2
    # q2 (pid3): no true match in the gallery -> skipped.
    # q3 (pid1 cam1): 2 junk, 0 match @1, 1 @2, 3 junk, 5 match @3, 4 @4.
    ap3, inp3, first3 = (1 / 1 + 2 / 3) / 2, 2 / 3, 1
    firsts = np.array([first0, first1, first3])
    cmc = np.array([(firsts <= r + 1).mean() for r in range(6)])
    return cmc, (ap0 + ap1 + ap3) / 3, (inp0 + inp1 + inp3) / 3


def distmat_from_order(order):
    order = np.asarray(order)
    dist = np.empty(order.shape)
    np.put_along_axis(dist, order, np.arange(order.shape[1], dtype=float)[None].repeat(len(order), 0), axis=1)
    return dist


def random_case(seed, num_q=30, num_g=200, ties=False):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, 10, num_q)  # pids 8 and 9 have no gallery match
    g_pids = rng.integers(-1, 8, num_g)
    q_cams = rng.integers(0, 3, num_q)
    g_cams = rng.integers(0, 3, num_g)
    dist = rng.integers(0, 6, (num_q, num_g)).astype(float) if ties else rng.random((num_q, num_g))
    return dist, q_pids, g_pids, q_cams, g_cams


def assert_same(a: RankMetrics, b: RankMetrics):
    np.testing.assert_allclose(a.cmc, b.cmc, atol=1e-12)
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12)
    assert a.mINP == pytest.approx(b.mINP, abs=1e-12)
    assert a.num_valid_queries == b.num_valid_queries


def test_hand_made_ranking():
    cmc, mAP, mINP = hand_expected()
    m = evaluate_order(torch.tensor(ORDER), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert m.cmc.shape == (6,)  # max_rank=50 capped at G=6
    np.testing.assert_allclose(m.cmc, cmc)
    np.testing.assert_allclose(m.cmc, [1 / 3, 1, 1, 1, 1, 1])
    assert m.mAP == pytest.approx(mAP) == pytest.approx(11 / 18)
    assert m.mINP == pytest.approx(mINP) == pytest.approx(5 / 9)
    assert m.num_valid_queries == 3

    cmc_r, mAP_r, mINP_r = evaluate_rank(distmat_from_order(ORDER), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS,
                                         max_rank=3, return_minp=True)
    np.testing.assert_allclose(cmc_r, cmc[:3])
    assert (mAP_r, mINP_r) == (pytest.approx(mAP), pytest.approx(mINP))


def test_rank_r_accuracy_reads_the_cmc():
    m = evaluate_order(torch.tensor(ORDER), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert (m.rank(1), m.rank(2), m.rank(6)) == (pytest.approx(1 / 3), 1.0, 1.0)
    assert m.rank(10) == 1.0  # past a 6-item gallery every match is counted already
    cut = evaluate_order(torch.tensor(ORDER), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=3)
    assert cut.rank(3) == 1.0
    with pytest.raises(ValueError, match="rank-5 is past the CMC's 3 ranks; evaluate with max_rank >= 5"):
        cut.rank(5)
    with pytest.raises(ValueError, match="r=0 must be a positive integer"):
        m.rank(0)


def test_query_without_match_is_skipped():
    full = evaluate_order(np.array(ORDER), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    keep = [0, 1, 3]
    without = evaluate_order(np.array(ORDER)[keep], np.take(Q_PIDS, keep), G_PIDS, np.take(Q_CAMS, keep), G_CAMS)
    assert_same(full, without)


def test_only_same_camera_matches_is_an_error():
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_order(np.array([[0, 1, 2]]), [5], [5, 5, -1], [0], [0, 0, 1])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_reference(seed, ties):
    dist, q_pids, g_pids, q_cams, g_cams = random_case(seed, ties=ties)
    cmc, mAP, mINP, num_valid = reference(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    assert num_valid < len(q_pids)  # the case exercises skipped queries
    cmc_t, mAP_t, mINP_t = evaluate_rank(torch.from_numpy(dist), q_pids, g_pids, q_cams, g_cams,
                                         max_rank=20, return_minp=True)
    np.testing.assert_allclose(cmc_t, cmc, atol=1e-12)
    assert mAP_t == pytest.approx(mAP, abs=1e-12)
    assert mINP_t == pytest.approx(mINP, abs=1e-12)


@pytest.mark.parametrize("chunk", [1, 7, 30])
def test_streamed_chunks_equal_one_shot(chunk):
    dist, q_pids, g_pids, q_cams, g_cams = random_case(2, ties=True)
    order = torch.from_numpy(np.argsort(dist, axis=1, kind="stable"))
    whole = evaluate_order(order, q_pids, g_pids, q_cams, g_cams)
    streamed = evaluate_order(iter(order.split(chunk)), q_pids, g_pids, q_cams, g_cams)
    as_numpy = evaluate_order([c.numpy() for c in order.split(chunk)], q_pids, g_pids, q_cams, g_cams)
    assert_same(whole, streamed)
    assert_same(whole, as_numpy)


@pytest.mark.parametrize("chunk_size", [1, 4, 29])
def test_chunk_size_does_not_change_result(chunk_size):
    dist, q_pids, g_pids, q_cams, g_cams = random_case(3, ties=True)
    expected = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, return_minp=True)
    got = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, return_minp=True, chunk_size=chunk_size)
    np.testing.assert_allclose(got[0], expected[0])
    assert got[1:] == pytest.approx(expected[1:])


def test_numpy_and_torch_inputs_agree():
    dist, q_pids, g_pids, q_cams, g_cams = random_case(4, ties=True)
    from_numpy = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, return_minp=True)
    from_torch = evaluate_rank(torch.tensor(dist, dtype=torch.float32), torch.tensor(q_pids), torch.tensor(g_pids),
                               torch.tensor(q_cams), torch.tensor(g_cams), return_minp=True)
    from_half = evaluate_rank(dist.astype(np.float16), list(q_pids), list(g_pids), list(q_cams), list(g_cams),
                              return_minp=True)
    for got in (from_torch, from_half):
        np.testing.assert_allclose(got[0], from_numpy[0])
        assert got[1:] == pytest.approx(from_numpy[1:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    dist, q_pids, g_pids, q_cams, g_cams = random_case(5, ties=True)
    cpu = evaluate_rank(torch.from_numpy(dist), q_pids, g_pids, q_cams, g_cams, return_minp=True, chunk_size=7)
    gpu = evaluate_rank(torch.from_numpy(dist).cuda(), q_pids, g_pids, q_cams, g_cams, return_minp=True,
                        chunk_size=7)
    np.testing.assert_allclose(gpu[0], cpu[0])
    assert gpu[1:] == pytest.approx(cpu[1:])


D = np.zeros((2, 3))
P2, C2 = [1, 2], [0, 1]
P3, C3 = [1, 2, 3], [1, 0, 1]


@pytest.mark.parametrize("args, kwargs, message", [
    ((D, [1, 2, 3], P3, C2, C3), {}, "q_pids has shape"),
    ((D, P2, P2, C2, C3), {}, "g_pids has shape"),
    ((D, P2, P3, [0], C3), {}, "q_camids has shape"),
    ((D, P2, P3, C2, [0, 1, 2, 3]), {}, "g_camids has shape"),
    ((np.zeros((0, 3)), [], P3, [], C3), {}, "query set is empty"),
    ((np.zeros((2, 0)), P2, [], C2, []), {}, "gallery is empty"),
    ((np.zeros(3), P2, P3, C2, C3), {}, "distmat: expected 2 dimensions"),
    ((np.array([[0, 1, np.nan], [0, 1, 2]]), P2, P3, C2, C3), {}, "distmat contains NaN"),
    ((D, P2, P3, C2, C3), {"max_rank": 0}, "max_rank=0 must be a positive integer"),
    ((D, P2, P3, C2, C3), {"chunk_size": 0}, "chunk_size=0 must be a positive integer"),
])
def test_bad_input_to_evaluate_rank(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_rank(*args, **kwargs)


O = torch.tensor([[0, 1, 2], [2, 1, 0]])


@pytest.mark.parametrize("order, labels, message", [
    (O, ([1, 2, 3], P3, C2, C3), "q_pids has shape"),
    (O, (P2, P2, C2, C3), "g_pids has shape"),
    ([torch.tensor([[0, 1]]), torch.tensor([[1, 0]])], (P2, P3, C2, C3), "order rows have length 2"),
    ([O[:1]], (P2, P3, C2, C3), "order covers 1 queries but q_pids has 2"),
    ([O, O], (P2, P3, C2, C3), "order covers more than 2 queries"),
    (torch.tensor([[0, 1, 3], [2, 1, 0]]), (P2, P3, C2, C3), "outside \\[0, 2\\]"),
    (O.float(), (P2, P3, C2, C3), "integer gallery indices"),
    ([], ([], P3, [], C3), "query set is empty"),
])
def test_bad_input_to_evaluate_order(order, labels, message):
    with pytest.raises(ValueError, match=message):
        evaluate_order(order, *labels)


def test_order_rows_that_are_not_permutations_are_refused():
    # An all-zeros "ranking" used to score mAP 1.0.
    q_pids, g_pids = torch.tensor([0, 1]), torch.tensor([0, 1, 2])
    q_cams, g_cams = torch.tensor([0, 0]), torch.tensor([1, 1, 1])
    with pytest.raises(ValueError, match=r"order row 0 \(query 0\) is not a permutation of range\(3\)") as err:
        evaluate_order(torch.zeros(2, 3, dtype=torch.long), q_pids, g_pids, q_cams, g_cams)
    assert "\n" not in str(err.value)
    good, bad = torch.tensor([[0, 1, 2]]), torch.tensor([[1, 1, 2]])
    with pytest.raises(ValueError, match=r"order row 1 \(query 1\)"):
        evaluate_order(iter([good, bad]), q_pids, g_pids, q_cams, g_cams)
    assert evaluate_order(torch.tensor([[0, 1, 2], [2, 1, 0]]), q_pids, g_pids, q_cams, g_cams).mAP == pytest.approx(0.75)


@pytest.mark.parametrize("informative", [False, True])
def test_distances_equal_the_plain_loop_with_ties_and_junk(informative):
    """Counting positions equals the per-query loop on its stable argsort, with heavy ties and junk; on random
    distances (most items precede some match) and on informative ones (true matches mostly first, so that few
    items precede the last match), which are counted by two paths."""
    from reidgraph.evaluation import evaluate_distances

    g = torch.Generator().manual_seed(5)
    for trial in range(20):
        Q, G = int(torch.randint(1, 40, (1,), generator=g)), int(torch.randint(1, 300, (1,), generator=g))
        dist = torch.randint(0, 6 if trial % 2 else 10**6, (Q, G), generator=g).double()  # few values: ties
        q_pids, g_pids = torch.randint(0, 5, (Q,), generator=g), torch.randint(-1, 5, (G,), generator=g)
        q_cams, g_cams = torch.randint(0, 3, (Q,), generator=g), torch.randint(0, 3, (G,), generator=g)
        if informative:  # all but one in eight non-matches behind every match, ties kept among the rest
            behind = (q_pids[:, None] != g_pids[None]) & (torch.rand(Q, G, generator=g) < 7 / 8)
            dist += behind * dist.max()
        if not any((g_pids == p).logical_and(g_cams != c).any() for p, c in zip(q_pids, q_cams)):
            continue
        cmc, mAP, mINP, valid = reference(dist.numpy(), q_pids.numpy(), g_pids.numpy(), q_cams.numpy(),
                                          g_cams.numpy())
        chunks = dist.float().split(7)
        m = evaluate_distances(iter(chunks), q_pids, g_pids, q_cams, g_cams)
        assert m.num_valid_queries == valid
        np.testing.assert_allclose(m.cmc, cmc)
        assert m.mAP == pytest.approx(mAP, abs=1e-12) and m.mINP == pytest.approx(mINP, abs=1e-12)


def test_distances_refuse_bad_chunks():
    from reidgraph.evaluation import evaluate_distances

    pids, cams = torch.tensor([1, 2]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"distance chunks must be \[q, 2\]"):
        evaluate_distances(iter([torch.zeros(2, 3)]), pids, pids, cams, cams)
    with pytest.raises(ValueError, match="distances contain NaN \\(first in query row 1\\)"):
        evaluate_distances(torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), pids, pids, cams, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="distances cover 1 queries but q_pids has 2"):
        evaluate_distances(iter([torch.zeros(1, 2)]), pids, pids, cams, cams)
