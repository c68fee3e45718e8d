"""Images in, ranked lists out: paper §3.3 "Training Stage" (three stages), then "Testing Stage" and §4.1 metrics."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..data.datasets import ReIDDataset
from ..evaluation import results_row
from ..features import FeatureSet
from ..graph import GraphSettings
from ..nn import FFGNN, ffgnn_rerank
from ..ranked_view import MATCH, ranked_view, tile_kind
from ..ranking import ranked_orders
from ..visualize import ranked_lists_picture, save_picture
from .distributed import Dist, barrier
from .extract import extract_features
from ..model_file import load_ffgnn
from .train_fen import FENTrainConfig, train_fen
from .train_gnn import GNNTrainConfig, load_graph_classifier, train_ffgnn
from .train_joint import JointTrainConfig, train_joint


def compare(tag: str, ffgnn: FFGNN, settings: GraphSettings, query: FeatureSet,
            gallery: FeatureSet, progress: bool) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
    """Rows for FEN features and FFGNN fusion, with both methods' top-10 for the picture."""
    start = time.perf_counter()
    fen_orders = torch.cat(list(ranked_orders(query.feats, gallery.feats)))
    fen_row = results_row(f"FEN{tag}", fen_orders, query, gallery, time.perf_counter() - start)
    start = time.perf_counter()
    result = ffgnn_rerank(ffgnn, query.feats, gallery.feats, settings, query_camids=query.camids,
                          gallery_camids=gallery.camids, progress=progress)
    gnn_orders = torch.cat(list(result.order_chunks()))
    gnn_row = results_row(f"+ FFGNN{tag}", gnn_orders, query, gallery, time.perf_counter() - start)
    return [fen_row, gnn_row], fen_orders[:, :10], gnn_orders[:, :10]


def picture(out: Path, query: FeatureSet, gallery: FeatureSet, before: torch.Tensor, after: torch.Tensor,
            num: int = 4) -> Path:
    """The queries whose top-10 FFGNN changes most for the better (ties: first queries), counting the matches
    the protocol counts (not the query's identity in its own camera)."""
    pids, camids = gallery.pids.tolist(), gallery.camids.tolist()

    def matches(top: torch.Tensor) -> torch.Tensor:  # per query: its tiles the picture frames as matches
        return torch.tensor([sum(tile_kind(qpid, qcam, pids[g], camids[g]) == MATCH for g in row)
                             for qpid, qcam, row in zip(query.pids.tolist(), query.camids.tolist(), top.tolist())])

    gain = matches(after) - matches(before)
    chosen = gain.argsort(descending=True, stable=True)[:num].tolist()
    blocks = ranked_view(query, gallery, {"FEN": (before, None), "+ FFGNN": (after, None)}, chosen, top=10)
    return save_picture(ranked_lists_picture(blocks), out / "ranked_lists.png")


def run_pipeline(dataset: ReIDDataset, out: str | Path, fen_config: FENTrainConfig, settings: GraphSettings,
                 gnn_config: GNNTrainConfig, joint_config: JointTrainConfig | None = None, *,
                 dist: Dist = Dist(), resume: bool = True, progress: bool = True) -> dict:
    """Train stages 1-3 on ``dataset.train``, evaluate on its query/gallery, write results to ``out``.

    Writes ``fen.pt``, ``ffgnn.pt``, ``joint.pt`` (checkpoints, resumed from when
    present), ``{train,test}_features.npz``, ``log.jsonl``, ``results.json`` and
    ``ranked_lists.png``. Returns the results (rows and per-stage seconds).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log, seconds, rows = out / "log.jsonl", {}, []
    device = dist.device
    h, w = fen_config.height, fen_config.width

    start = time.perf_counter()
    fen = train_fen(dataset.train, fen_config, checkpoint=out / "fen.pt", log_path=log, resume=resume, dist=dist,
                    progress=progress)
    seconds["stage1_fen"] = time.perf_counter() - start

    def features(split_name: str, records) -> FeatureSet:
        return extract_features(fen, records, h, w, split=split_name, device=device, progress=progress)

    if dist.is_main:
        start = time.perf_counter()
        train = features("train", dataset.train)
        query, gallery = features("query", dataset.query), features("gallery", dataset.gallery)
        train.save(out / "train_features.npz")
        FeatureSet(torch.cat([query.feats, gallery.feats]), torch.cat([query.pids, gallery.pids]),
                   torch.cat([query.camids, gallery.camids]), query.paths + gallery.paths,
                   query.split + gallery.split).save(out / "test_features.npz")
        seconds["extract"] = time.perf_counter() - start
        start = time.perf_counter()
        train_ffgnn(train, settings, gnn_config, device=device, log_path=log, checkpoint=out / "ffgnn.pt",
                    resume=resume, progress=progress)
        seconds["stage2_ffgnn"] = time.perf_counter() - start
    barrier(dist)
    ffgnn, _ = load_ffgnn(out / "ffgnn.pt")
    if dist.is_main:
        stage_rows, before, after = compare("", ffgnn, settings, query, gallery, progress)
        rows += stage_rows
    if joint_config is not None:
        start = time.perf_counter()
        fen, ffgnn = train_joint(fen, ffgnn, dataset.train, settings, joint_config, height=h, width=w,
                                 graph_config=gnn_config, graph_classifier=load_graph_classifier(out / "ffgnn.pt"),
                                 checkpoint=out / "joint.pt", log_path=log, resume=resume, dist=dist,
                                 progress=progress)
        seconds["stage3_joint"] = time.perf_counter() - start
        if dist.is_main:
            query, gallery = features("query", dataset.query), features("gallery", dataset.gallery)
            stage_rows, before, after = compare(" (joint)", ffgnn, settings, query, gallery, progress)
            rows += stage_rows
    results = {"dataset": dataset.name, "rows": rows, "seconds": seconds, "fen": asdict(fen_config),
               "graph": settings.as_dict(), "ffgnn": asdict(gnn_config),
               "joint": None if joint_config is None else asdict(joint_config)}
    if dist.is_main:
        results["picture"] = str(picture(out, query, gallery, before, after))
        (out / "results.json").write_text(json.dumps(results, indent=2))
    barrier(dist)
    return results
