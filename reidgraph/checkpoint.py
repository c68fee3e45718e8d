"""Checkpoints that survive interruption: written atomically, checked on load, settings in one format."""
from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch

from .atomic import atomic_write


def stage_config(own, **sections) -> dict:
    """A training stage's settings as its checkpoint stores them (the one format every stage writes).

    ``own``'s fields (a dataclass such as :class:`~reidgraph.engine.loop.OptimConfig`, ``epochs`` among
    them) stand at the top level; each of ``sections`` is nested under its name, dataclasses as dicts:
    ``stage_config(config, graph=settings, channels=256)`` gives ``{"lr": ..., "epochs": ...,
    "graph": {"K": 150, ...}, "channels": 256}``. :func:`load_checkpoint` reads it back.
    """
    nested = {name: asdict(value) if is_dataclass(value) else value for name, value in sections.items()}
    return {**asdict(own), **nested}


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk,
    and replace ``path`` in one rename: a crash mid-write leaves the previous
    checkpoint intact, never a truncated one.
    """
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` whose ``state["kind"]`` is ``kind``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a reidgraph checkpoint of that kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; check the path or train first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a foreign or broken file
        detail = str(err).splitlines()[0][:80] if str(err) else ""
        raise ValueError(f"{path} is not a readable reidgraph checkpoint ({type(err).__name__}: {detail}); "
                         "pass a file written by reidgraph") from None
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} holds a {found!r} checkpoint, not a {kind!r} one; pass the {kind} checkpoint")
    return state
