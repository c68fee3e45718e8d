"""Writing a benchmark's results."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

SUMMARY = Path(__file__).resolve().parent / "results" / "summary.json"


def save(out: str | None, results: dict) -> None:
    """Write ``results`` as indented JSON to ``out``, when a path is given."""
    if out:
        Path(out).write_text(json.dumps(results, indent=2))


def update_summary(values: dict, source: str) -> None:
    """Write ``values`` into ``results/summary.json``, keeping the keys other benchmarks wrote there, and
    record under ``sources`` that ``source`` wrote these keys today."""
    old = json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}
    sources = {**old.pop("sources", {}), **dict.fromkeys(values, f"{source}, {datetime.date.today()}")}
    SUMMARY.write_text(json.dumps({**old, **values, "sources": sources}, indent=2))
