"""PKSampler, neighborhood_split and random_graph_neighbors."""
from collections import Counter

import numpy as np
import pytest
import torch

from reidgraph.data.samplers import PKSampler, neighborhood_split, random_graph_neighbors


def make_pids(num_ids=23, seed=0):
    """Identities with 1 to 7 images each, shuffled, so some have fewer than images_per_id."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(num_ids) * 10, rng.integers(1, 8, num_ids))
    return rng.permutation(pids)


def test_batches_hold_P_distinct_ids_with_images_per_id_each():
    pids = make_pids()
    sampler = PKSampler(pids, P=4, images_per_id=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 6
    for batch in batches:
        assert len(batch) == 12
        counts = Counter(pids[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {3}


def test_small_identities_use_all_their_images():
    pids = make_pids()
    for batch in PKSampler(pids, P=4, images_per_id=3):
        for pid in set(pids[batch]):
            own = set(np.flatnonzero(pids == pid))
            picked = {i for i in batch if pids[i] == pid}
            assert picked == own if len(own) <= 3 else len(picked) == 3


def test_epoch_covers_every_identity():
    pids = make_pids()
    sampler = PKSampler(pids, P=4, images_per_id=2)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        seen = Counter(pid for batch in sampler for pid in set(pids[batch]))
        assert set(seen) == set(pids)
        assert sum(seen.values()) == len(sampler) * 4 and max(seen.values()) <= 2


def test_single_image_identities_are_usable():
    pids = np.arange(8)
    batches = list(PKSampler(pids, P=2, images_per_id=4))
    assert len(batches) == 4 and sorted(set(i for b in batches for i in b)) == list(range(8))


def test_deterministic_per_epoch_and_epochs_differ():
    pids = make_pids()
    a, b = PKSampler(pids, P=4, images_per_id=3, seed=5), PKSampler(pids, P=4, images_per_id=3, seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) == list(a)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert list(PKSampler(pids, P=4, images_per_id=3, seed=6)) != list(PKSampler(pids, P=4, images_per_id=3, seed=5))


@pytest.mark.parametrize("num_ids,world_size", [(32, 2), (23, 3), (9, 4)])
def test_ddp_ranks_are_disjoint_and_equal_length(num_ids, world_size):
    pids = make_pids(num_ids)
    samplers = [PKSampler(pids, P=4, images_per_id=2, seed=1, rank=r, world_size=world_size) for r in range(world_size)]
    for s in samplers:
        s.set_epoch(7)
    per_rank = [list(s) for s in samplers]
    assert len({len(s) for s in samplers}) == 1
    assert all(len(b) == len(samplers[0]) for b in per_rank)
    epoch = samplers[0].epoch_batches()
    assert len(epoch) == len(samplers[0]) * world_size
    assert all(b == epoch[r::world_size] for r, b in enumerate(per_rank))
    covered = {pid for b in per_rank for batch in b for pid in pids[batch]}
    assert covered == set(pids)


def test_ddp_ranks_share_no_images_when_ids_split_evenly():
    pids = np.repeat(np.arange(16), 3)
    ranks = [[i for batch in PKSampler(pids, P=4, images_per_id=3, rank=r, world_size=2) for i in batch]
             for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == list(range(48))


def test_string_pids():
    pids = ["a", "b", "c", "a", "b"]
    batches = list(PKSampler(pids, P=3, images_per_id=1))
    assert len(batches) == 1 and sorted(pids[i] for i in batches[0]) == ["a", "b", "c"]


def test_works_as_a_dataloader_batch_sampler():
    pids = torch.as_tensor(make_pids())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(pids),
                                         batch_sampler=PKSampler(pids, P=4, images_per_id=3))
    batches = [b for (b,) in loader]
    assert len(batches) == len(loader) == 6
    assert all(b.shape == (12,) and len(b.unique()) == 4 for b in batches)


@pytest.mark.parametrize("kwargs,match", [
    ({"P": 1}, "P=1"),
    ({"P": 30}, "only 23 distinct identities"),
    ({"images_per_id": 0}, "images_per_id=0"),
    ({"rank": 2, "world_size": 2}, "rank=2"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PKSampler(make_pids(), **kwargs)


def test_empty_pids():
    with pytest.raises(ValueError, match="pids"):
        PKSampler([])


@pytest.mark.parametrize("n,fraction,expected", [(100, 0.2, 20), (7, 0.2, 1), (2, 0.9, 1), (11, 0.5, 6)])
def test_neighborhood_split_sizes_and_partition(n, fraction, expected):
    anchors, rest = neighborhood_split(n, fraction)
    assert anchors.dtype == rest.dtype == torch.long
    assert len(anchors) == expected and len(rest) == n - expected
    assert torch.equal(torch.cat([anchors, rest]).sort().values, torch.arange(n))
    assert torch.equal(rest, rest.sort().values)


def test_neighborhood_split_deterministic_in_seed_and_epoch():
    a = neighborhood_split(200, seed=3, epoch=1)
    assert all(torch.equal(x, y) for x, y in zip(a, neighborhood_split(200, seed=3, epoch=1)))
    assert not torch.equal(a[0], neighborhood_split(200, seed=3, epoch=2)[0])
    assert not torch.equal(a[0], neighborhood_split(200, seed=4, epoch=1)[0])


@pytest.mark.parametrize("kwargs,match", [
    ({"num_items": 1}, "num_items"),
    ({"num_items": 10, "fraction": 0.0}, "fraction"),
    ({"num_items": 10, "fraction": 1.0}, "fraction"),
])
def test_neighborhood_split_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neighborhood_split(**kwargs)


CANDIDATE_PIDS = torch.arange(30) // 3  # 10 identities, 3 images each


def test_random_graph_neighbors_are_pk_batches():
    """Each row: the anchor's other images first (up to images_per_id - 1), then whole groups of other ids."""
    anchors = torch.tensor([0, 4, 99, 7])  # 99: an identity with no candidate
    nb = random_graph_neighbors(anchors, CANDIDATE_PIDS, 8, images_per_id=2, seed=2)
    assert nb.shape == (4, 8) and nb.dtype == torch.long
    assert nb.min() >= 0 and nb.max() < 30
    assert all(len(set(row.tolist())) == 8 for row in nb)
    for pid, row in zip(anchors.tolist(), nb):
        ids = CANDIDATE_PIDS[row].tolist()
        own = [i for i in ids if i == pid]
        assert len(own) == (0 if pid == 99 else 1) and (not own or ids[0] == pid)
        others = [i for i in ids if i != pid]
        counts = [others.count(i) for i in dict.fromkeys(others)]  # in order of appearance
        assert counts[:-1] == [2] * (len(counts) - 1) and counts[-1] in (1, 2)  # whole groups but the last
    assert torch.equal(nb, random_graph_neighbors(anchors, CANDIDATE_PIDS, 8, images_per_id=2, seed=2))
    assert not torch.equal(nb, random_graph_neighbors(anchors, CANDIDATE_PIDS, 8, images_per_id=2, seed=3))


def test_random_graph_neighbors_fill_up_when_identities_run_out():
    nb = random_graph_neighbors(torch.tensor([0, 1]), CANDIDATE_PIDS, 30, images_per_id=1)
    assert all(sorted(row.tolist()) == list(range(30)) for row in nb)


def test_random_graph_neighbors_K_too_large():
    with pytest.raises(ValueError, match="K=31"):
        random_graph_neighbors(torch.tensor([0]), CANDIDATE_PIDS, 31)
