"""NeighborhoodDataset: build_graphs' graphs one at a time, through PyG's loaders, training and inference."""
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from reidgraph.data import synthetic_features
from reidgraph.engine import recipe, train_ffgnn
from reidgraph.graph import GraphSettings, NeighborhoodDataset, build_graphs
from reidgraph.nn import FFGNN, TrainingFreeFusion, fused_anchors, fused_features

README = Path(__file__).resolve().parents[2] / "README.md"
SMALL = GraphSettings(K=12, k=4, tau=5)
CAMERA_AWARE = GraphSettings(K=12, k=4, tau=5, lam=0.3, same_camera_weight=0.0)
KEYS = ("x", "edge_index", "edge_weight", "n_id", "anchor_id", "y")


@pytest.fixture
def sets():
    """(query, gallery): labelled features of disjoint identities seen by the same cameras."""
    return synthetic_features(4, 3, 3, 16, seed=0), synthetic_features(10, 5, 3, 16, seed=0, first_pid=100)


def assert_same_graphs(dataset, graphs, keys=KEYS):
    assert len(dataset) == len(graphs)
    for i, expected in enumerate(graphs):
        data = dataset[i]
        for key in keys:
            assert torch.equal(data[key], expected[key]), (i, key)


@pytest.mark.parametrize("settings", [SMALL, CAMERA_AWARE], ids=["paper", "camera-aware"])
def test_one_set_gives_build_graphs_exactly(sets, settings):
    _, g = sets
    dataset = NeighborhoodDataset(g, settings)
    graphs = build_graphs(g.feats, g.feats, settings, exclude=torch.arange(len(g)), anchor_labels=g.pids,
                          candidate_labels=g.pids, anchor_camids=g.camids, candidate_camids=g.camids)
    assert_same_graphs(dataset, graphs, KEYS + (("camids",) if settings.camera_aware else ()))
    # The one difference: build_graphs keeps camids only for camera-aware settings, the dataset whenever
    # the features have them (the list loss reads them), so "camids" is compared only where both have it.
    assert ("camids" in graphs[0]) == settings.camera_aware and "camids" in dataset[0]
    assert all(i not in dataset[i].n_id[1:].tolist() for i in range(len(g)))  # not its own neighbor
    assert torch.equal(dataset[7].camids, g.camids[dataset[7].n_id])  # cameras travel even where graphs ignore them


@pytest.mark.parametrize("settings", [SMALL, CAMERA_AWARE], ids=["paper", "camera-aware"])
def test_separate_gallery_gives_build_graphs_exactly(sets, settings):
    q, g = sets
    dataset = NeighborhoodDataset(q, settings, gallery=g)
    graphs = build_graphs(q.feats, g.feats, settings, anchor_labels=q.pids, candidate_labels=g.pids,
                          anchor_camids=q.camids, candidate_camids=g.camids)
    assert_same_graphs(dataset, graphs, KEYS + (("camids",) if settings.camera_aware else ()))
    assert dataset[3].n_id[0].item() == len(g) + 3  # [gallery; anchors], as build_graphs numbers them


def test_given_neighbors_and_unlabelled_tensors(sets):
    q, g = sets
    table = torch.randperm(len(g))[:SMALL.K + 3].repeat(len(q), 1)  # the first K columns are used
    dataset = NeighborhoodDataset(q.feats, SMALL, gallery=g.feats, neighbors=table)
    assert_same_graphs(dataset, build_graphs(q.feats, g.feats, SMALL, neighbors=table[:, :SMALL.K]), KEYS[:-1])
    assert "y" not in dataset[0] and "camids" not in dataset[0]


def test_holds_a_neighbor_table_not_graphs(sets):
    """Memory: the features and A K indices; the graphs' A (K+1) D floats are never held."""
    _, g = sets
    dataset = NeighborhoodDataset(g, SMALL)
    assert dataset.neighbors.shape == (len(g), SMALL.K) and dataset.neighbors.dtype == torch.int64
    assert dataset.candidates is dataset.anchors  # one set: one copy of the features
    held = {}  # every tensor the dataset reaches, those inside objects it holds (a FeatureSet) too, once each
    for value in vars(dataset).values():
        for t in [value, *(vars(value).values() if hasattr(value, "__dict__") else ())]:
            if isinstance(t, torch.Tensor):
                held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    expected = len(g) * 16 * 4 + len(g) * SMALL.K * 8 + 2 * len(g) * 8  # features, table, pids and camids
    assert sum(held.values()) == expected


def test_loader_shuffles_and_batches_as_one_by_one(sets):
    _, g = sets
    dataset = NeighborhoodDataset(g, CAMERA_AWARE)
    torch.manual_seed(0)
    batches = list(DataLoader(dataset, batch_size=8, shuffle=True))
    seen = torch.cat([b.anchor_id for b in batches])
    assert sorted(seen.tolist()) == list(range(len(g))) and seen.tolist() != list(range(len(g)))
    for batch in batches:
        alone = Batch.from_data_list([dataset[i] for i in batch.anchor_id.tolist()])
        for key in ("x", "edge_index", "edge_weight", "n_id", "y", "camids", "batch", "ptr"):
            assert torch.equal(batch[key], alone[key]), key
    model = FFGNN(16).eval()
    batch = batches[0]
    together = model(batch.x, batch.edge_index, batch.edge_weight)
    one_by_one = torch.cat([model(d.x, d.edge_index, d.edge_weight) for d in batch.to_data_list()])
    assert torch.allclose(together, one_by_one, atol=1e-6)
    assert torch.equal(dataset[5:9][1].x, dataset[6].x)  # slices index anchors as PyG's datasets do


def test_loader_with_two_workers_gives_the_same_graphs(sets):
    _, g = sets
    dataset = NeighborhoodDataset(g, SMALL)
    plain, workers = (list(DataLoader(dataset, batch_size=16, num_workers=n)) for n in (0, 2))
    assert len(plain) == len(workers) == 4
    for a, b in zip(plain, workers):
        assert all(torch.equal(a[key], b[key]) for key in ("x", "edge_index", "edge_weight", "n_id", "y"))


@pytest.mark.parametrize("model", [FFGNN(16), FFGNN(16, output="l2", init="identity"), TrainingFreeFusion()],
                         ids=["batchnorm", "l2", "training-free"])
def test_fused_anchors_equal_fused_features(sets, model):
    q, g = sets
    kw = dict(anchor_camids=g.camids, candidate_camids=g.camids)
    one_set = fused_anchors(model, NeighborhoodDataset(g, CAMERA_AWARE), batch_size=4)
    assert torch.equal(one_set, fused_features(model, g.feats, g.feats, CAMERA_AWARE, exclude="self", **kw))
    dataset = NeighborhoodDataset(g, CAMERA_AWARE, neighbors=torch.randperm(len(g))[1:13].repeat(len(g), 1))
    given = fused_features(model, g.feats, g.feats, CAMERA_AWARE, neighbors=dataset.neighbors, **kw)
    assert torch.equal(fused_anchors(model, dataset), given)  # its table, not a search, gives the graphs
    assert not torch.equal(given, one_set)
    kw = dict(anchor_camids=q.camids, candidate_camids=g.camids)
    separate = fused_anchors(model, NeighborhoodDataset(q, CAMERA_AWARE, gallery=g))
    assert torch.equal(separate, fused_features(model, q.feats, g.feats, CAMERA_AWARE, **kw))
    data = NeighborhoodDataset(q, CAMERA_AWARE, gallery=g)[2]  # node 0 of the model run on the dataset's graph
    assert torch.allclose(separate[2], F.normalize(model.eval()(data.x, data.edge_index, data.edge_weight)[0], dim=0),
                          atol=1e-5)


def test_train_ffgnn_takes_the_features_a_dataset_was_made_from(sets):
    """Each epoch draws its own anchors and graphs (§3.3): the dataset's fixed graphs are not a training input."""
    _, g = sets
    settings, config = recipe()
    settings, config = replace(settings, K=20, k=5, tau=5), replace(config, epochs=1)
    dataset = NeighborhoodDataset(g, settings)
    model = train_ffgnn(g, dataset.settings, config, progress=False)
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())
    with pytest.raises(TypeError, match="got NeighborhoodDataset; each epoch draws its own anchors and graphs, so "
                       "pass the features") as caught:
        train_ffgnn(dataset, config=config, progress=False)
    assert "\n" not in str(caught.value)


def test_bad_input_is_refused_in_one_line(sets):
    q, g = sets
    dataset = NeighborhoodDataset(g, SMALL)
    cases = [
        (IndexError, "graph 50 is out of range: the dataset holds 50; index from 0 to 49", lambda: dataset[50]),
        (IndexError, "anchor -1 is out of range: the dataset has 50 anchors", lambda: dataset.get(-1)),
        (ValueError, "camera-aware graphs, which need the camera of every image: give the features and the "
         "gallery camids", lambda: NeighborhoodDataset(q.feats, CAMERA_AWARE, gallery=g.feats)),
        (ValueError, "only 49 candidates per anchor; the maximum is K=49",
         lambda: NeighborhoodDataset(g, GraphSettings(K=50))),
        (ValueError, "features has pids but gallery has none; give both pids, or neither",
         lambda: NeighborhoodDataset(q, SMALL, gallery=g.feats)),
        (ValueError, "features has 16-d features but gallery has 8-d",
         lambda: NeighborhoodDataset(q, SMALL, gallery=torch.randn(30, 8))),
        (ValueError, "pass the whole dataset and index the result", lambda: fused_anchors(FFGNN(16), dataset[:5])),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=re.escape(message)) as caught:
            call()
        assert "\n" not in str(caught.value)
    sim = F.normalize(g.feats, dim=1) @ F.normalize(g.feats, dim=1).T  # brute force: plain cosine, argsort
    order = sim.fill_diagonal_(float("-inf")).argsort(dim=1, descending=True)
    assert order[:, :SMALL.K].equal(dataset.neighbors)  # each image's top-K among the rest, best first


def test_readme_script_runs(tmp_path, monkeypatch):
    """The README's script for GNN researchers, read from README.md so that the two cannot drift apart."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Graphs as a PyG dataset", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.splitlines()) <= 15
    synthetic_features(40, 5, 4, 16, seed=0).save(tmp_path / "train.npz")  # 200 images: K=150 fits
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["logits"].shape[0] == 8 * 151 and scope["opt"].state  # a batch of 8 graphs, one step taken


def test_importing_the_dataset_keeps_pyg_warning_silenced():
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c",
                           "from reidgraph.graph import NeighborhoodDataset"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
