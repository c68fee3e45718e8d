"""Checkpoints that survive interruption: written atomically, checked on load."""
from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import atomic_write


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
