"""Sharded re-ranking: the merge of per-shard top-k lists, and `reidgraph rerank` under torchrun (2 gloo
processes) against the one-process run."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from reidgraph.cli import main
from reidgraph.data import synthetic_features
from reidgraph.checkpoint import save_checkpoint, stage_config
from reidgraph.engine import GNNTrainConfig
from reidgraph.graph import GraphSettings
from reidgraph.nn import FFGNN
from reidgraph.rerank.sharded import merge_topk, shard_range

GRAPH = ["--param", "K=20", "--param", "k=5", "--param", "tau=5"]
# (method and options, --top): heads alone (top <= K), heads and cosine tails (top > K), the whole gallery;
# k-reciprocal (its all-vs-all pass split by rows) and ECN (on process 0 alone).
RUNS = [(["cosine"], 50), (["fusion", *GRAPH], 15), (["fusion", *GRAPH], 60), (["fusion-paper", *GRAPH], 201),
        (["ffgnn", "--model", "m.pt"], 40), (["k-reciprocal"], 10), (["k-reciprocal", "--param", "k1=7"], 201),
        (["ecn"], 10)]


def reference(values, index, k, largest):
    """Each row's first k of a stable sort of its entries by (value, index): a plain loop."""
    values, index = torch.cat(values, 1), torch.cat(index, 1)
    rows = [sorted(zip(v.tolist(), i.tolist()), key=lambda e: ((-e[0] if largest else e[0]), e[1]))[:k]
            for v, i in zip(values, index)]
    return torch.tensor([[v for v, _ in r] for r in rows]), torch.tensor([[i for _, i in r] for r in rows])


@pytest.mark.parametrize("largest", [True, False])
def test_merge_topk_equals_the_top_of_the_whole_row(largest):
    gen = torch.Generator().manual_seed(0)
    sims = torch.randint(0, 4, (6, 11), generator=gen).float()  # few distinct values: many ties
    for bounds in ([0, 2, 11], [0, 5, 6, 11], [0, 11]):  # uneven shards, one of a single row
        values, index = [], []
        for start, stop in zip(bounds, bounds[1:]):
            part = sims[:, start:stop]
            k = min(4, stop - start)  # each shard's own top, shorter than k where the shard is small
            order = part.argsort(dim=1, descending=largest, stable=True)[:, :k]
            values.append(part.gather(1, order))
            index.append(order + start)
        for k in (1, 4):
            got = merge_topk(values, index, k, largest=largest)
            want_v, want_i = reference(values, index, k, largest)
            assert torch.equal(got[0], want_v) and torch.equal(got[1], want_i)
            whole = sims.argsort(dim=1, descending=largest, stable=True)[:, :k]
            assert torch.equal(got[1], whole)


def test_merge_topk_ties_go_to_the_lower_index_whatever_the_list_order():
    values = [torch.tensor([[0.5, 0.5]]), torch.tensor([[0.75, 0.5]])]
    index = [torch.tensor([[7, 9]]), torch.tensor([[8, 2]])]
    v, i = merge_topk(values, index, 3)
    assert i.tolist() == [[8, 2, 7]] and v.tolist() == [[0.75, 0.5, 0.5]]
    with pytest.raises(ValueError, match=r"k=5 is outside \[1, 4\] \(the lists hold 4 entries per row\)"):
        merge_topk(values, index, 5)


def test_shard_range_tiles_the_rows_in_order():
    for n, parts in ((10, 3), (3, 3), (7, 1), (2, 5)):
        ranges = [shard_range(n, parts, r) for r in range(parts)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Label-free query (29) and gallery (201) files with camera ids, a one-image gallery, and an FFGNN model
    trained on camera-aware graphs (random weights and BatchNorm statistics)."""
    root = tmp_path_factory.mktemp("sharded")
    features = synthetic_features(23, 10, 4, 16, seed=3)
    is_query = torch.zeros(len(features), dtype=torch.bool)
    is_query[::8] = True
    for name, rows in (("q", is_query), ("g", ~is_query), ("g1", torch.arange(1))):
        part = features.subset(rows)
        np.savez(root / f"{name}.npz", feats=part.feats.numpy(), camids=part.camids.numpy(),
                 paths=np.array([f"{name}/{i}.jpg" for i in range(len(part))]))
    torch.manual_seed(0)
    settings, config = GraphSettings(K=20, k=5, tau=5, same_camera_weight=0.0), GNNTrainConfig(num_layers=2)
    net = FFGNN(16, config.num_layers, config.alpha, config.output, config.init)
    for norm in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        norm.running_mean.normal_(0, 0.1)
        norm.running_var.uniform_(0.5, 2)
    save_checkpoint({"kind": "ffgnn", "config": stage_config(config, graph=settings, channels=16),
                     "modules": {"model": net.state_dict()}}, root / "m.pt")
    return root


def rerank_args(root, method, top, out, gallery="g.npz"):
    method = [str(root / a) if a == "m.pt" else a for a in method]
    return ["rerank", "--query", str(root / "q.npz"), "--gallery", str(root / gallery), "--method", *method,
            "--top", str(top), "--out", str(out), "--quiet"]


# Each process: every CLI run in one process group, then sharded_knn and fetch_rows on uneven splits
# (all queries on process 0, none on process 1), each exit code and check in a JSON line per process.
WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    from reidgraph.cli import main
    from reidgraph.graph import knn
    from reidgraph.rerank.sharded import fetch_rows, shard_range, sharded_knn

    codes = [main(json.loads(line)) for line in open(sys.argv[1])]
    rank = int(os.environ["RANK"])
    gen = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(9, 8, generator=gen), torch.randn(13, 8, generator=gen)
    start, stop = shard_range(13, 2, rank)
    mine = query if rank == 0 else query[:0]
    sims, index = sharded_knn(mine, gallery[start:stop], start, 10, chunk_size=4)
    want_sims, want_index = knn(mine, gallery, 10) if rank == 0 else (sims, index)
    wanted = torch.tensor([12, 0, 6, 6, 7]) if rank == 0 else torch.tensor([], dtype=torch.long)
    rows = fetch_rows(wanted, gallery[start:stop], start)
    checks = {"knn": torch.equal(index, want_index) and torch.allclose(sims, want_sims),
              "fetch": torch.equal(rows, gallery[wanted])}
    with open(sys.argv[2] + str(rank), "w") as f:
        json.dump({"codes": codes, **checks}, f)
""")


def test_two_processes_write_the_one_process_lists(inputs, tmp_path, capsys):
    commands = [rerank_args(inputs, method, top, tmp_path / f"two{n}.npz") for n, (method, top) in enumerate(RUNS)]
    commands.append(rerank_args(inputs, ["cosine"], 1, tmp_path / "none.npz", gallery="g1.npz"))
    (tmp_path / "commands").write_text("".join(json.dumps(c) + "\n" for c in commands))
    (tmp_path / "worker.py").write_text(WORKER)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           str(tmp_path / "worker.py"), str(tmp_path / "commands"), str(tmp_path / "result")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads((tmp_path / f"result{rank}").read_text()) for rank in (0, 1)]
    assert [r["codes"] for r in results] == [[0] * len(RUNS) + [2]] * 2
    assert all(r["knn"] and r["fetch"] for r in results)
    # One line per error or notice, from process 0 alone.
    assert done.stderr.count("--nproc-per-node 2 exceeds the gallery's 1 images; use at most 1 processes") == 1
    assert done.stderr.count("ecn needs the whole gallery in one process and is not sharded") == 1
    assert "k-reciprocal needs the whole gallery" not in done.stderr  # it shares its all-vs-all pass
    assert done.stdout.count("top 50 of each written to") == 1 and "by 2 processes" in done.stdout
    for n, (method, top) in enumerate(RUNS):
        assert main(rerank_args(inputs, method, top, tmp_path / f"one{n}.npz")) == 0
        with np.load(tmp_path / f"one{n}.npz") as one, np.load(tmp_path / f"two{n}.npz") as two:
            assert sorted(one.files) == sorted(two.files)
            assert np.array_equal(one["index"], two["index"]), method
            assert np.allclose(one["distance"], two["distance"], rtol=0, atol=1e-6), method
            assert all(np.array_equal(one[f], two[f]) for f in ("query_paths", "gallery_paths"))


def test_more_processes_than_gallery_images_is_a_one_line_error(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "300")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "300")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(rerank_args(inputs, ["cosine"], 5, tmp_path / "r.npz")) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("reidgraph rerank: error: --nproc-per-node 300 exceeds the gallery's 201 images; "
                   "use at most 201 processes")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "100")  # 3 nodes
    assert main(rerank_args(inputs, ["cosine"], 5, tmp_path / "r.npz")) == 2
    assert "300 processes (--nnodes x --nproc-per-node) exceed the gallery's 201" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")  # the node's other processes stay quiet
    assert main(rerank_args(inputs, ["cosine"], 5, tmp_path / "r.npz")) == 2
    assert capsys.readouterr().err == "" and not (tmp_path / "r.npz").exists()
