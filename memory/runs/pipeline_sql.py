"""How the SQLite run store keeps pipeline steps (memory/runs/pipeline_rows.py): the
statements of one batch's commit, and reading a step back."""

from __future__ import annotations

from collections.abc import Sequence

from tutti_mcp.memory.connection import Database
from tutti_mcp.memory.runs.pipeline_rows import (
    ItemRow,
    ItemState,
    PipelineMark,
    PipelineSnapshot,
)
from tutti_mcp.memory.runs.rows import Op, dump, load

_ITEM = (
    "INSERT OR REPLACE INTO pipeline_items (run_id, step_id, item, stage, state, value, error, "
    "attempts, pos) VALUES (?,?,?,?,?,?,?,?,?)"
)
_PRUNE = "DELETE FROM pipeline_items WHERE run_id = ? AND step_id = ? AND item < ? AND state = ?"
_MARK = (
    "INSERT OR REPLACE INTO pipeline_marks (run_id, step_id, frontier, sink_offset, sunk, dead, "
    "stats) VALUES (?,?,?,?,?,?,?)"
)


def commit_ops(
    run_id: str, step_id: str, rows: Sequence[ItemRow], mark: PipelineMark, prune_before: int
) -> list[Op]:
    """The rows (consecutive, so they run as one executemany), the pruning, the mark."""
    ops: list[Op] = [
        (
            _ITEM,
            (
                run_id,
                step_id,
                r.item,
                r.stage,
                r.state.value,
                None if r.value is None else dump(r.value),
                r.error,
                r.attempts,
                r.pos,
            ),
        )
        for r in rows
    ]
    if prune_before > 0:
        ops.append((_PRUNE, (run_id, step_id, prune_before, ItemState.SUNK.value)))
    values = (mark.frontier, mark.sink_offset, mark.sunk, mark.dead, dump(mark.stats))
    ops.append((_MARK, (run_id, step_id, *values)))
    return ops


async def read(db: Database, run_id: str, step_id: str, rows: bool) -> PipelineSnapshot:
    marks = await db.fetchall(
        "SELECT frontier, sink_offset, sunk, dead, stats FROM pipeline_marks "
        "WHERE run_id = ? AND step_id = ?",
        (run_id, step_id),
    )
    mark = PipelineMark()
    if marks:
        m = marks[0]
        mark = PipelineMark(m[0], m[1], m[2], m[3], load(m[4]) or {})
    if not rows:
        return PipelineSnapshot(mark, {})
    found = await db.fetchall(
        "SELECT item, stage, state, value, error, attempts, pos FROM pipeline_items "
        "WHERE run_id = ? AND step_id = ? ORDER BY item",
        (run_id, step_id),
        large=True,
    )
    return PipelineSnapshot(
        mark,
        {r[0]: ItemRow(r[0], r[1], ItemState(r[2]), load(r[3]), r[4], r[5], r[6]) for r in found},
    )
