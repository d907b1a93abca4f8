"""What workflow_status and workflow_result show of a run's pipeline steps: per stage,
items done, in flight and dead, throughput and latency (as last committed, a few hundred
milliseconds behind at most), and the result lists the dead letters."""

from __future__ import annotations

from typing import Any

from tutti_mcp.memory.runs.pipeline_rows import ItemState
from tutti_mcp.memory.runs.records import RunRecord
from tutti_mcp.memory.runs.store import RunStore

DEAD_LISTED = 100  # dead letters listed in a result (the count says how many in all)


def pipeline_steps(run: RunRecord) -> list[str]:
    """The run's pipeline steps, from its stored spec."""
    steps = run.spec.get("steps") if isinstance(run.spec, dict) else None
    return [
        s["id"]
        for s in steps or []
        if isinstance(s, dict) and isinstance(s.get("pipeline"), dict) and s.get("id") in run.steps
    ]


async def pipeline_figures(
    store: RunStore, run: RunRecord, *, dead_letters: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sid in pipeline_steps(run):
        snap = await store.load_pipeline(run.id, sid, rows=dead_letters)
        mark, stats = snap.mark, snap.mark.stats
        if not stats and not mark.sunk:
            continue  # not started
        figures: dict[str, Any] = {
            "items": mark.sunk,
            "dead": mark.dead,
            "in_flight": stats.get("in_flight", 0),
            "items_per_s": stats.get("items_per_s"),
            "max_in_flight": stats.get("max_in_flight"),
            "in_flight_bound": stats.get("in_flight_bound"),
            "stages": {
                s["id"]: {k: v for k, v in s.items() if k != "id"} for s in stats.get("stages", [])
            },
        }
        if dead_letters:
            dead = [r for r in snap.rows.values() if r.state is ItemState.DEAD]
            stage_ids = [s["id"] for s in stats.get("stages", [])]
            figures["dead_letters"] = [
                {
                    "item_index": r.item,
                    "stage": stage_ids[r.stage] if r.stage < len(stage_ids) else r.stage,
                    "error": r.error,
                    "attempts": r.attempts,
                    "item": (r.value or {}).get("item"),
                }
                for r in dead[:DEAD_LISTED]
            ]
        out[sid] = figures
    return out
