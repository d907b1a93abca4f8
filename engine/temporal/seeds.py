"""Runs on Temporal that start from another run's committed steps: `resume` of a closed run
that did not succeed (a new execution of the same workflow id, with every step it had
committed, foreach and loop instances included) and `fork` (a new run that keeps the steps
Engine.fork would keep). The seed travels in the workflow's arguments and is planted in the
workflow's store before the run executes, so those steps are restored, not run again."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import Checkpoint, RunRecord, StepStatus


def seed_of(run: RunRecord, keep: Collection[str] | None = None) -> dict[str, Any]:
    """What of `run` a new execution starts from: its committed steps (`keep` only, when
    given; then steps added by foreach or loops are not kept, as Engine.fork does)."""
    added = [
        [rec.parent, sid, rec.scope or {}]
        for sid, rec in run.steps.items()
        if keep is None and rec.parent is not None
    ]
    committed = sorted(
        (
            rec
            for sid, rec in run.steps.items()
            if rec.status.has_output and rec.seq is not None and (keep is None or sid in keep)
        ),
        key=lambda rec: rec.seq or 0,
    )
    checkpoints = [
        {
            "step_id": rec.step_id,
            "status": rec.status.value,
            "output": rec.output,
            "attempts": rec.attempts,
            "started_at": rec.started_at,
            "finished_at": rec.finished_at or 0.0,
            "usage": rec.usage,
            "executor": rec.executor,
            "error": rec.error,
        }
        for rec in committed
    ]
    return {"added": added, "checkpoints": checkpoints}


async def plant(store: InMemoryRunStore, run_id: str, seed: Mapping[str, Any]) -> None:
    """Put a seed's steps into a run just created in the workflow's store."""
    by_parent: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for parent, sid, scope in seed.get("added", []):
        by_parent.setdefault(parent, []).append((sid, scope))
    for parent, steps in by_parent.items():
        await store.add_steps(run_id, parent, steps)
    for n, cp in enumerate(seed.get("checkpoints", []), 1):
        await store.commit_checkpoint(
            run_id,
            Checkpoint(
                cp["step_id"],
                n,
                StepStatus(cp["status"]),
                cp["output"],
                cp["attempts"],
                cp["started_at"],
                cp["finished_at"],
                usage=cp["usage"],
                executor=cp["executor"],
                error=cp["error"],
            ),
        )
