"""benchmarks/run.py runs on a tiny size and fails cleanly on a missing file."""
import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


# One row of each kind: the features, a peer, both presets, a training-free fuser, a composition, GCR(V), and
# rows after de-biasing (the full table runs every row; the test keeps CI short).
QUICK_ROWS = ["FEN features", "k-reciprocal", "FFGNN, paper preset", "FFGNN, default recipe",
              "training-free, camera-aware", "FFGNN, default recipe + ECN", "GCR", "GCRV", "FEN features, de-biased",
              "FFGNN, default recipe + ECN, de-biased"]

QUICK_SCALE = ["kNN K=150, torch float32", "kNN all-vs-all k=21, torch bf16-screened", "FFGNN inference",
               "FFGNN inference, paper preset", "FFGNN+ECN",
               "k-reciprocal", "dense k-reciprocal (original algorithm)", "GCRV"]


def test_quick_accuracy_table(tmp_path):
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--methods", *QUICK_ROWS, "--scale-methods",
                           *QUICK_SCALE, "--out", str(tmp_path / "r.json")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "r.json").read_text())["accuracy"]
    assert [r["method"] for r in rows] == QUICK_ROWS
    assert set(json.loads((tmp_path / "r.json").read_text())["training_seconds"]) == {"paper", "default",
                                                                                       "default+debias"}
    for r in rows:
        assert 0 <= r["mAP"] <= 1 and r["seconds"] > 0 and r["peak_rss_gib"] > 0
    assert "k-reciprocal" in done.stdout and "peak RSS" in done.stdout
    scale = json.loads((tmp_path / "r.json").read_text())["scale"]
    assert [r["method"] for r in scale] == QUICK_SCALE
    assert all(r["completed"] and r["seconds"] > 0 and r["peak_rss_gib"] >= r["baseline_rss_gib"] for r in scale)
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["scale"] == "quick" and 0 < summary["ffgnn_roofline_fraction"]
    assert summary["gcrv_vs_kreciprocal_seconds"] == summary["gcrv_seconds"] / summary["kreciprocal_seconds"]


def test_missing_features_file_exits_non_zero(tmp_path):
    done = subprocess.run([sys.executable, str(RUN), "--features", str(tmp_path / "nope.npz"), "--model", "m.pt"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--features " in done.stderr and "nope.npz not found" in done.stderr
    features = tmp_path / "f.npz"
    features.write_bytes(b"")
    done = subprocess.run([sys.executable, str(RUN), "--features", str(features), "--model", str(tmp_path / "m.pt"),
                           "--methods", "FFGNN, paper preset"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--model " in done.stderr and "m.pt not found" in done.stderr


def test_bad_options_are_refused(tmp_path):
    for args, message in [(["--repeats", "0"], "--repeats must be at least 1"),
                          (["--device", "tpu"], "--device tpu: this machine offers cpu"),
                          (["--scale-methods", "GCRV", "nope"], "--scale-methods: unknown rows ['nope']")]:
        done = subprocess.run([sys.executable, str(RUN), "--quick", *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and message in done.stderr


def test_every_row_has_its_de_biased_twin_but_gcr():
    sys.path.insert(0, str(RUN.parent))
    try:
        import run
    finally:
        sys.path.remove(str(RUN.parent))
    raw = [name for name in run.METHODS if not name.endswith(", de-biased")]
    assert {"GCR", "GCRV", "FFGNN, paper preset + ECN", "training-free, camera-aware + CA-Jaccard"} <= set(raw)
    assert {f"{name}, de-biased" for name in raw if name not in ("GCR", "GCRV")} == set(run.METHODS) - set(raw)
