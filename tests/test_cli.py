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
