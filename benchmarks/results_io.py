"""Writing a benchmark's results."""
from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

SUMMARY = Path(__file__).resolve().parent / "results" / "summary.json"


def save(out: str | None, results: dict) -> None:
    """Write ``results`` as indented JSON to ``out``, when a path is given."""
    if out:
        Path(out).write_text(json.dumps(results, indent=2))


def cpu() -> str:
    """This machine's CPU as ``/proc/cpuinfo`` names it, with the matrix extensions that change which
    precision is fast (``AVX512-BF16``, ``AMX``): figures from different CPUs are not comparable."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    extras = [label for flag, label in (("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX")) if flag in flags]
    return f"{name} ({', '.join(extras) or 'no AVX512-BF16 or AMX'})"


def update_summary(values: dict, source: str) -> None:
    """Write ``values`` into ``results/summary.json``, keeping the keys other benchmarks wrote there, and
    record under ``sources`` that ``source`` wrote these keys today."""
    old = json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}
    sources = {**old.pop("sources", {}), **dict.fromkeys(values, f"{source}, {datetime.date.today()}")}
    SUMMARY.write_text(json.dumps({**old, **values, "sources": sources}, indent=2))
