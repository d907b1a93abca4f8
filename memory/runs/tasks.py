"""MCP tasks as SQLite rows: which run a task follows, when it was made, how long it is kept,
and the terminal status it was sealed with. The run itself stays in the run store; a task
row is a small handle on it, so a task outlives the process that created it."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from tutti_mcp.memory.connection import Database
from tutti_mcp.memory.runs.rows import dump, load

_COLUMNS = "id, run_id, tool, created_at, ttl_ms, final, final_at, result"


def new_task_id() -> str:
    """Unguessable (128 random bits): without an authorization context, a task id is all
    that guards a task's result (MCP tasks spec, security considerations)."""
    return "task_" + secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: str
    run_id: str | None  # None: the tool call failed before it made a run
    tool: str
    created_at: float
    ttl_ms: int | None  # None: kept as long as its run
    final: str | None = None  # the terminal status it was sealed with, if any
    final_at: float | None = None
    result: dict[str, Any] | None = None  # the tool's answer when there is no run

    def expired(self, now: float) -> bool:
        return self.ttl_ms is not None and now > self.created_at + self.ttl_ms / 1000


def _record(row: Any) -> TaskRecord:
    return TaskRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], load(row[7]))


class TaskStore:
    """Tasks in the run store's database (same connection, same group commits)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        run_id: str | None,
        tool: str,
        ttl_ms: int | None,
        result: dict[str, Any] | None = None,
        final: str | None = None,
        task_id: str | None = None,
    ) -> TaskRecord:
        """A new task, durable when this returns (a `tasks/get` for it must then work).
        `task_id`: one made by new_task_id() beforehand (default: a new one)."""
        now = time.time()
        task = TaskRecord(
            task_id or new_task_id(),
            run_id,
            tool,
            now,
            ttl_ms,
            final,
            now if final else None,
            result,
        )
        await self.db.write(
            [
                (
                    f"INSERT INTO tasks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        task.id,
                        run_id,
                        tool,
                        now,
                        ttl_ms,
                        final,
                        task.final_at,
                        None if result is None else dump(result),
                    ),
                )
            ]
        )
        return task

    async def get(self, task_id: str) -> TaskRecord | None:
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        return _record(rows[0]) if rows else None

    async def page(self, limit: int, before: tuple[float, str] | None = None) -> list[TaskRecord]:
        """Newest first; `before`: the (created_at, id) of the last task of the previous page."""
        if before is None:
            rows = await self.db.fetchall(
                f"SELECT {_COLUMNS} FROM tasks ORDER BY created_at DESC, id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = await self.db.fetchall(
                f"SELECT {_COLUMNS} FROM tasks WHERE (created_at, id) < (?, ?) "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (*before, limit),
            )
        return [_record(r) for r in rows]

    async def seal(self, task_id: str, final: str, at: float) -> None:
        """Record the terminal status a client may have seen; the first seal stays."""
        await self.db.write(
            [
                (
                    "UPDATE tasks SET final = ?, final_at = ? WHERE id = ? AND final IS NULL",
                    (final, at, task_id),
                )
            ]
        )

    async def drop_expired(self, now: float) -> None:
        """Forget tasks past their time to live (their runs stay)."""
        await self.db.write(
            [
                (
                    "DELETE FROM tasks WHERE ttl_ms IS NOT NULL AND created_at + ttl_ms / 1000.0 < ?",
                    (now,),
                )
            ]
        )
