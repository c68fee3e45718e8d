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


def _stalled_peer(rank, port, timeout_s, results):
    """Rank 1 stops itself (SIGSTOP: alive to the OS, silent to its peers); rank 0 waits in a barrier."""
    import signal
    import time

    import torch.distributed as dist

    from reidgraph.engine.distributed import init_distributed, peer_failure

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
    init_distributed("cpu", timeout_s)
    dist.barrier()
    if rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    start = time.monotonic()
    try:
        dist.barrier()
        results.put(("returned", time.monotonic() - start, ""))
    except Exception as err:  # noqa: BLE001 - the test reports what was raised
        results.put(("peer failure" if peer_failure(err) else type(err).__name__, time.monotonic() - start,
                     str(err)[:200]))


def test_a_stalled_peer_ends_the_survivors_wait_within_the_timeout():
    import multiprocessing
    import queue

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_stalled_peer, args=(rank, port, 3, results)) for rank in (0, 1)]
    for w in workers:
        w.start()
    try:
        kind, waited, message = results.get(timeout=120)
    except queue.Empty:
        kind, waited, message = "no answer in 120 s", None, ""
    finally:
        for w in workers:
            w.kill()
            w.join(10)
    assert kind == "peer failure", (kind, message)  # what reidgraph's commands turn into one line, exit 2
    assert waited < 60, waited


def test_a_peer_failure_is_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch):
    import reidgraph.cli as cli
    import reidgraph.engine.distributed as distributed

    def stalled(args):
        raise RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 3000ms for recv operation")

    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(cli, "export_command", stalled)
    monkeypatch.setitem(cli.COMMANDS, "export", (stalled, *cli.COMMANDS["export"][1:]))
    assert cli.main(["export", "--checkpoint", "c.pt", "--out", str(tmp_path / "f.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "another process of the job stopped answering" in err and "\n" not in err
