"""Writing a benchmark's results."""
from __future__ import annotations

import json
from pathlib import Path


def save(out: str | None, results: dict) -> None:
    """Write ``results`` as indented JSON to ``out``, when a path is given."""
    if out:
        Path(out).write_text(json.dumps(results, indent=2))
