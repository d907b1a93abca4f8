"""How runs and events become SQLite rows and back (the run store's tables)."""

from __future__ import annotations

import json
import time
from typing import Any

from tutti_mcp.memory.group_commit import Op
from tutti_mcp.memory.runs.records import Event, RunRecord, RunStatus

__all__ = ["Op", "dump", "event_op", "load", "run_from_row"]


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def event_op(event: Event) -> Op:
    return (
        "INSERT INTO events (run_id, ts, kind, step_id, data) VALUES (?,?,?,?,?)",
        (
            event.run_id,
            time.time(),
            event.kind,
            event.step_id,
            None if event.data is None else dump(event.data),
        ),
    )


def run_from_row(r: Any) -> RunRecord:
    return RunRecord(
        id=r[0],
        name=r[1],
        status=RunStatus(r[2]),
        spec=json.loads(r[3]),
        inputs=json.loads(r[4]),
        created_at=r[5],
        started_at=r[6],
        finished_at=r[7],
        owner=r[8],
        parent_run_id=r[9],
        error=r[10],
        metrics=load(r[11]),
        workspace=r[12],
    )
