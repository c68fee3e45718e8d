"""Stages 1 and 3 under torchrun with 2 CPU processes (gloo)."""
import json
import os
import socket
import subprocess
import sys

from helpers import TINY_TRAIN


def test_two_process_training_through_torchrun(tiny_market, tmp_path):
    out = tmp_path / "run"
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "reidgraph.cli", "train", "--dataset", "market1501", "--root", str(tiny_market), "--out", str(out),
           "--epochs-fen", "2", "--epochs-gnn", "1", "--epochs-joint", "1", "--joint-graphs", "2", *TINY_TRAIN]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    fen = [r for r in records if r["stage"] == "fen"]
    assert [r["epoch"] for r in fen] == [1, 2] and all(r["processes"] == 2 for r in fen)
    assert [r["stage"] for r in records].count("joint") == 1
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows][-1] == "+ FFGNN (joint)"
