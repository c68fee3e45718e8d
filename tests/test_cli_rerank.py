"""`reidgraph rerank` and `reidgraph evaluate --method`: label-free inputs in, ranked lists out, one-line errors."""
import csv
import json

import numpy as np
import pytest
import torch

from reidgraph.cli import main
from reidgraph.data import synthetic_features
from reidgraph.features import FeatureSet
from reidgraph.rerank import rerank

GRAPH = ["--param", "K=12", "--param", "k=4", "--param", "tau=4"]


@pytest.fixture
def files(tmp_path):
    """Label-free query and gallery files (feats, camids, paths), and one labelled file with a split."""
    test = synthetic_features(8, 6, 3, 16, seed=1, first_pid=100)
    query, gallery = test.query_gallery()
    for name, part in (("q", query), ("g", gallery)):
        np.savez(tmp_path / f"{name}.npz", feats=part.feats.numpy(), camids=part.camids.numpy(),
                 paths=np.array([f"{name}/{i}.jpg" for i in range(len(part))]))
    labelled = FeatureSet(torch.cat([query.feats, gallery.feats]), torch.cat([query.pids, gallery.pids]),
                          torch.cat([query.camids, gallery.camids]), split=["query"] * len(query) + ["gallery"] * len(gallery))
    labelled.save(tmp_path / "test.npz")
    return tmp_path, query, gallery


def inputs(tmp_path):
    return ["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz")]


@pytest.mark.parametrize("method, params", [("k-reciprocal", []), ("fusion", GRAPH), ("fusion+ecn",
                         ["--param", "fusion.K=12", "--param", "fusion.k=4", "--param", "tau=4"]),
                         ("gcrv", ["--param", "k1=5"]), ("debias+k-reciprocal", ["--param", "debias.ridge=5.0"])])
def test_rerank_writes_the_methods_top_lists(files, method, params, capsys):
    tmp_path, query, gallery = files
    out = tmp_path / "ranked.npz"
    assert main(["rerank", *inputs(tmp_path), "--method", method, *params, "--top", "7", "--out", str(out),
                 "--quiet"]) == 0
    assert f"top 7 of each written to {out}" in capsys.readouterr().out
    named = {p.split("=")[0]: float(p.split("=")[1]) if "." in p.split("=")[1] else int(p.split("=")[1])
             for p in params[1::2]}
    index, distance = rerank(method, query.feats, gallery.feats, query_camids=query.camids,
                             gallery_camids=gallery.camids, params=named).top(7)
    with np.load(out) as data:
        assert np.array_equal(data["index"], index.numpy()) and np.allclose(data["distance"], distance.numpy())
        assert data["query_paths"][0] == "q/0.jpg" and len(data["gallery_paths"]) == len(gallery)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rerank_csv_json_and_features_with_a_split(files, capsys):
    tmp_path, query, gallery = files
    assert main(["rerank", *inputs(tmp_path), "--method", "cosine", "--out", str(tmp_path / "r.csv"), "--quiet"]) == 0
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.reader(f))
    top = min(100, len(gallery))  # the default: 100, or the whole gallery when it is smaller
    assert rows[0] == ["query", "rank", "gallery", "distance"] and len(rows) == 1 + len(query) * top
    assert rows[1][:2] == ["q/0.jpg", "1"] and rows[1][2].startswith("g/")
    assert main(["rerank", "--features", str(tmp_path / "test.npz"), "--method", "cosine", "--top", "3",
                 "--out", str(tmp_path / "r.json"), "--quiet"]) == 0
    listed = json.loads((tmp_path / "r.json").read_text())
    assert len(listed) == 3 * len(query) and listed[0]["query"] == 0 and listed[0]["rank"] == 1
    index, _ = rerank("cosine", query.feats, gallery.feats).top(3)
    assert [o["gallery"] for o in listed[:3]] == index[0].tolist()


def test_evaluate_any_method_by_name(files, capsys):
    tmp_path, *_ = files
    base = ["evaluate", "--features", str(tmp_path / "test.npz"), "--json", "--quiet", "--device", "cpu"]
    for method, extra in [("ecn", []), ("ca-jaccard", []), ("fusion-paper", ["--K", "12", "--k", "4", "--tau", "4"]),
                          ("fusion+aqe", ["--K", "12", "--k", "4", "--tau", "4", "--param", "n=3"])]:
        assert main([*base, "--method", method, *extra]) == 0, capsys.readouterr().err
        result = json.loads(capsys.readouterr().out)
        assert result["method"] == method and 0 <= result["mAP"] <= 1


@pytest.mark.parametrize("args, message", [
    (["--method", "nope"], "unknown method 'nope'; choose one of cosine, ffgnn, fusion"),
    (["--method", "ffgnn"], "needs a trained model: pass --model"),
    (["--method", "ecn", "--param", "k1=3"], "has no parameter 'k1'"),
    (["--method", "ecn", "--param", "k=three"], "parameter k=three: expected int"),
    (["--method", "ecn", "--param", "k"], "is not NAME=VALUE"),
    (["--method", "cosine", "--top", "1000"], "--top 1000 is outside"),
    (["--method", "cosine", "--device", "cuda:0"] if not torch.cuda.is_available() else ["--method", "nope"],
     "no CUDA device" if not torch.cuda.is_available() else "unknown method"),
])
def test_rerank_bad_input_is_one_line_with_exit_code_2(files, capsys, args, message):
    tmp_path, *_ = files
    out = tmp_path / "r.npz"
    assert main(["rerank", *inputs(tmp_path), *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reidgraph rerank: error: ") and message in err and "\n" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rerank_bad_files_are_one_line(files, capsys):
    tmp_path, query, _ = files
    np.savez(tmp_path / "narrow.npz", feats=query.feats[:, :8].numpy())
    np.savez(tmp_path / "nocams.npz", feats=query.feats.numpy())
    cases = [
        (["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "narrow.npz"), "--method", "cosine",
          "--out", str(tmp_path / "r.npz")], "has 16-d features but --gallery"),
        ([*inputs(tmp_path), "--method", "cosine", "--out", str(tmp_path / "missing" / "r.npz")], "does not exist"),
        ([*inputs(tmp_path), "--method", "cosine", "--out", str(tmp_path / "r.parquet")], "unknown extension"),
        (["--query", str(tmp_path / "nocams.npz"), "--gallery", str(tmp_path / "g.npz"), "--method", "ca-jaccard",
          "--out", str(tmp_path / "r.npz")], "needs the camera id of every query and gallery image"),
        (["--query", str(tmp_path / "nocams.npz"), "--gallery", str(tmp_path / "g.npz"), "--method",
          "debias+ecn", "--out", str(tmp_path / "r.npz")], "method 'debias+ecn' needs the camera id of every"),
        (["--query", str(tmp_path / "nocams.npz"), "--gallery", str(tmp_path / "g.npz"), "--method", "gcrv",
          "--out", str(tmp_path / "r.npz")], "method 'gcrv' needs the camera id of every"),
        ([*inputs(tmp_path), "--method", "debias+gcr", "--param", "ridge=-1", "--out", str(tmp_path / "r.npz")],
         "ridge=-1.0 must be a positive number"),
        (["--query", str(tmp_path / "q.npz"), "--method", "cosine", "--out", str(tmp_path / "r.npz")],
         "pass --query q.npz and --gallery g.npz"),
    ]
    for args, message in cases:
        assert main(["rerank", *args, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert not (tmp_path / "r.npz").exists()


def test_rerank_reads_pytorch_result_mat_and_names_a_missing_field(files, capsys):
    from scipy.io import savemat
    tmp_path, query, gallery = files
    fields = {"query_f": query.feats.numpy(), "query_label": query.pids.numpy()[None],
              "query_cam": query.camids.numpy()[None], "gallery_f": gallery.feats.numpy(),
              "gallery_label": gallery.pids.numpy()[None], "gallery_cam": gallery.camids.numpy()[None]}
    savemat(tmp_path / "pytorch_result.mat", fields)
    assert main(["rerank", "--features", str(tmp_path / "pytorch_result.mat"), "--method", "ca-jaccard", "--top", "5",
                 "--out", str(tmp_path / "r.npz"), "--quiet"]) == 0
    index, _ = rerank("ca-jaccard", query.feats, gallery.feats, query_camids=query.camids,
                      gallery_camids=gallery.camids).top(5)
    with np.load(tmp_path / "r.npz") as data:
        assert np.array_equal(data["index"], index.numpy()) and "query_paths" not in data.files
    del fields["gallery_f"]
    savemat(tmp_path / "broken.mat", fields)
    assert main(["rerank", "--features", str(tmp_path / "broken.mat"), "--method", "cosine",
                 "--out", str(tmp_path / "b.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.mat" in err and "gallery_f" in err and "\n" not in err and not (tmp_path / "b.npz").exists()


def test_evaluate_fusion_with_a_small_K_alone_caps_k_and_tau(files, capsys):
    tmp_path, *_ = files
    for extra in (["--method", "fusion-paper"], ["--method", "fusion+aqe"]):
        assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--K", "8", "--json", "--quiet",
                     *extra]) == 0, capsys.readouterr().err
        assert 0 <= json.loads(capsys.readouterr().out)["mAP"] <= 1


def test_outputs_that_cannot_be_written_fail_before_the_work_in_one_line(files, capsys, monkeypatch):
    tmp_path, *_ = files
    (tmp_path / "plain").write_text("x")
    (tmp_path / "dir.npz").mkdir()
    import reidgraph.cli as cli

    monkeypatch.setattr(cli, "top_lists", lambda *a, **k: pytest.fail("the work started"))
    cases = [(str(tmp_path / "q.npz"), "is also an input"), (str(tmp_path / "dir.npz"), "is a folder"),
             (str(tmp_path / "plain" / "r.npz"), "is a file, not a folder")]
    for out, message in cases:
        assert main(["rerank", *inputs(tmp_path), "--method", "cosine", "--out", out, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert np.load(tmp_path / "q.npz")["feats"].shape[1] == 16  # the input is intact


def test_a_full_disk_is_one_line(files, capsys, monkeypatch):
    import errno

    import reidgraph.cli as cli

    tmp_path, *_ = files

    def full(path, *args):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cli, "write_ranked", full)
    assert main(["rerank", *inputs(tmp_path), "--method", "cosine", "--out", str(tmp_path / "r.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "r.npz: No space left on device" in err and "\n" not in err


@pytest.mark.parametrize("device, message", [("meta", "not meta"), ("mps", "not mps"), ("gpu7", "is not a device")])
def test_devices_this_machine_cannot_compute_on_are_one_line(files, capsys, device, message):
    tmp_path, *_ = files
    assert main(["rerank", *inputs(tmp_path), "--method", "cosine", "--device", device, "--out",
                 str(tmp_path / "r.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            rerank("cosine", torch.randn(3, 4), torch.randn(5, 4), device="cuda")


def test_features_saved_with_requires_grad_rank(files, capsys):
    tmp_path, query, gallery = files
    for name, part in (("qg", query), ("gg", gallery)):
        torch.save({"feats": part.feats.clone().requires_grad_(), "camids": part.camids}, tmp_path / f"{name}.pt")
    assert main(["rerank", "--query", str(tmp_path / "qg.pt"), "--gallery", str(tmp_path / "gg.pt"), "--method",
                 "k-reciprocal", "--out", str(tmp_path / "r.npz"), "--quiet"]) == 0
    assert np.load(tmp_path / "r.npz")["index"].shape[0] == len(query)


def test_a_prefixed_parameter_takes_its_parts_type(files, capsys):
    tmp_path, *_ = files
    for method, param in (("ecn", "ecn.k=5"), ("ecn", "k=5"), ("fusion+ecn", "ecn.k=5")):
        extra = ["--param", "fusion.K=12", "--param", "fusion.k=4", "--param", "fusion.tau=4"] \
            if method.startswith("fusion") else []
        assert main(["rerank", *inputs(tmp_path), "--method", method, "--param", param, *extra, "--out",
                     str(tmp_path / "r.npz"), "--quiet"]) == 0, capsys.readouterr().err
