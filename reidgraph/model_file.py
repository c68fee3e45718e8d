"""What a model file from ``train-gnn`` holds, read and written below both training and re-ranking.

A model file is a checkpoint of kind ``"ffgnn"`` (:mod:`reidgraph.checkpoint`): the FFGNN's weights, its
settings (``config``: ``channels``, ``num_layers``, ``alpha``, ``output``, ``init``, ``graph`` (the
:class:`~reidgraph.graph.GraphSettings` its graphs are built with) and ``debias`` (the per-camera de-biasing
its features went through, or ``None``)), and, where ``train-gnn`` chose one, the pipeline it stores
(``pipeline``: a :class:`Selection`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import load_checkpoint, save_checkpoint
from .debias import Debias
from .graph.settings import GraphSettings

if TYPE_CHECKING:  # the network imports PyG: at run time, only where a model is loaded
    from .nn import FFGNN


@dataclass
class Selection:
    """The winner of :func:`~reidgraph.engine.selection.select_pipeline` and the table it won, as a model file stores it.

    Attributes:
        method: the winning pipeline's name, as ``evaluate --method`` takes it (``ffgnn+ecn``,
            ``debias+gcr+ffgnn``, ``gcrv``).
        debias: whether the model to train on every identity de-biases its features.
        rows: one dict per pipeline: ``method``, ``debias``, ``mAP``, ``rank1`` (fractions) on the held-out part,
            ``seconds`` to rank it (a composition's first also fuses the features the next ones reuse);
            ``None`` scores and the reason under ``skipped`` for one whose defaults do not fit its size.
        held_out: ``ids``, ``query``, ``gallery``: the size of the held-out part.
    """

    method: str
    debias: bool
    rows: list[dict]
    held_out: dict

    def table(self) -> str:
        """The held-out table as aligned text, the winner marked."""
        width = max(len(r["method"]) for r in self.rows) + 2
        head = (f"held-out train identities ({self.held_out['ids']} ids, {self.held_out['query']} queries, "
                f"{self.held_out['gallery']} gallery); the winner is marked *")
        lines = [head, f"  {'pipeline':<{width}}{'mAP':>7}{'R1':>7}{'time (s)':>10}"]
        for r in self.rows:
            mark = "*" if r["method"] == self.method else " "
            scores = (f"{100 * r['mAP']:7.1f}{100 * r['rank1']:7.1f}{r['seconds']:10.2f}"
                      if r["mAP"] is not None else f"  not run: {r['skipped']}")
            lines.append(f"{mark} {r['method']:<{width}}{scores}")
        return "\n".join(lines)


def load_debias(path: str | Path) -> Debias | None:
    """The de-biasing a stage-2 model was trained after (``train_ffgnn(debias=...)``), ``None`` for raw features."""
    stored = load_checkpoint(path, "ffgnn")["config"].get("debias")
    return None if stored is None else Debias(**stored)


def load_ffgnn(path: str | Path) -> tuple[FFGNN, GraphSettings]:
    """The trained FFGNN (eval mode) and its graph settings from a stage-2 checkpoint."""
    from .nn import FFGNN

    state = load_checkpoint(path, "ffgnn")
    try:
        cfg = state["config"]
        model = FFGNN(cfg["channels"], cfg["num_layers"], cfg["alpha"], cfg["output"], cfg["init"])
        model.load_state_dict(state["modules"]["model"])
        settings = GraphSettings(**cfg["graph"])
        settings.check()
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as err:
        reason = f"no {err}" if isinstance(err, KeyError) else str(err).splitlines()[0][:160]
        raise ValueError(f"{path} is not a complete FFGNN model from train-gnn ({reason}); pass a model file "
                         "written by reidgraph train-gnn") from None
    return model.eval(), settings


def store_pipeline(path: str | Path, selection: Selection) -> None:
    """Write ``selection`` into the model file at ``path`` (atomically), for :func:`load_pipeline`."""
    state = load_checkpoint(path, "ffgnn")
    state["pipeline"] = {"method": selection.method, "debias": selection.debias, "rows": selection.rows,
                         "held_out": selection.held_out}
    save_checkpoint(state, path)


def load_pipeline(path: str | Path) -> Selection | None:
    """The pipeline stored in a model file by ``train-gnn``'s selection, ``None`` for a model trained without."""
    stored = load_checkpoint(path, "ffgnn").get("pipeline")
    return None if stored is None else Selection(**stored)
