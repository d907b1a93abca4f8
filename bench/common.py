"""What the benchmark measures (cases, variants, targets) and where it keeps the results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

LG_FILE = BENCH / "dags" / "langgraph-figures-2026-11-25.txt"
VARIANTS = ("ref", "mem", "sqlite")
OVERHEAD_CASES = ("chain_1000", "wide_1000", "layered_20x50")
SCALING_N = (250, 500, 1000, 2000)
LATENCY_CASES = ("layered_10x20_u10-100ms", "wide_200_50ms")
# Every step reads its dependency's output through a template (dagbench.to_spec
# templated=True), and a 20-step chain written as a workflow would be (dagbench.realistic).
TEMPLATED_CASES = ("chain_1000_tmpl", "wide_1000_tmpl", "realistic_20")
MEMORY_CASES = ("chain_1000", "wide_1000", "layered_20x50", "chain_2000")
CONCURRENT_RUNS, CONCURRENT_STEPS = 1000, 20  # runs of a templated chain at once, one store

TARGETS = {
    "mem_us_per_step_chain_1000": 25.0,
    "mem_us_per_step_chain_1000_tmpl": 60.0,
    "sqlite_us_per_step_chain_1000": 150.0,
    "sqlite_ratio_layered_10x20_u10-100ms": 1.03,
    "sqlite_ratio_wide_200_50ms": 1.10,
    "ckpt_bytes_per_step_spread_pct": 5.0,  # 250 vs 2000 steps: "constant" = within 5%
    "rss_growth_mb_chain_2000": 30.0,
}


class Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = path.open("w", encoding="utf-8")
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.f.write(json.dumps(row, default=str) + "\n")
        self.f.flush()

    def get(self, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]

    def walls(self, **match: Any) -> list[float]:
        rows = sorted(self.get(**match), key=lambda r: r.get("repeat", 0))
        return [r["wall_s"] for r in rows]
