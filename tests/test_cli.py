import json

from reidgraph.cli import main


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1", "--K", "30", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "FEN features" in out and "+ FFGNN" in out
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["FEN features", "+ FFGNN"]
    assert all(0 <= r["mAP"] <= 1 for r in rows)
    assert (tmp_path / "ffgnn.pt").is_file() and not (tmp_path / "ffgnn.pt.tmp").exists()


def test_bad_setting_is_one_line(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--K", "5000", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reidgraph demo: error: K=5000 is outside") and "\n" not in err


def test_train_gnn_then_evaluate_json(tmp_path, capsys):
    from reidgraph.data import synthetic_features
    synthetic_features(40, 6, 3, 16, seed=0).save(tmp_path / "train.npz")
    synthetic_features(20, 6, 3, 16, seed=0, first_pid=100).save(tmp_path / "test.npz")
    model = tmp_path / "m" / "gnn.pt"
    assert main(["train-gnn", "--features", str(tmp_path / "train.npz"), "--out", str(model), "--K", "20",
                 "--k", "5", "--tau", "5", "--epochs", "1", "--quiet"]) == 0
    assert model.is_file() and (tmp_path / "m" / "gnn.log.jsonl").is_file()
    capsys.readouterr()
    for extra in ([], ["--model", str(model)]):
        assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--json", "--quiet", *extra]) == 0
        result = json.loads(capsys.readouterr().out)
        assert set(result) == {"rank1", "rank5", "rank10", "mAP", "mINP"}
        assert all(0 <= v <= 1 for v in result.values())


def test_evaluate_rejects_foreign_model_and_wrong_dimension(tmp_path, capsys):
    from reidgraph.data import synthetic_features
    synthetic_features(20, 6, 3, 16, seed=0).save(tmp_path / "test.npz")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--model", str(tmp_path / "notes.pt")]) == 2
    assert "is not an FFGNN checkpoint" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1", "--K", "20", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--features", str(tmp_path / "test.npz"), "--model", str(tmp_path / "ffgnn.pt")]) == 2
    assert "expects 128-d features but" in capsys.readouterr().err
