"""How runs and events become SQLite rows and back, and how a connection is set up: shared
by the run store, the memory files and the workflow history."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import aiosqlite
import anyio

from tutti_mcp.memory.busy import retry_busy
from tutti_mcp.memory.migrations import apply_migrations
from tutti_mcp.memory.records import Event, RunRecord, RunStatus

Op = tuple[str, tuple[Any, ...]]


class DatabaseOpenError(Exception):
    """The database file could not be opened and set up; the connection is closed."""

    def __init__(self, path: str, reason: BaseException | str) -> None:
        self.path, self.reason = path, str(reason)
        super().__init__(f"cannot open the database {path}: {self.reason}")


def setup_connection(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """WAL, durability and foreign keys, then pending migrations. Processes that open a
    new file together wait for each other, each for up to the busy timeout."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    # Switching a fresh file to WAL answers SQLITE_BUSY at once while another connection
    # switches it or reads it (the busy handler is not called): retry until the deadline.
    retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall(), deadline)
    # NORMAL in WAL mode: a commit survives a process crash (what resume needs); only an
    # OS crash or power loss can lose the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    apply_migrations(conn, max(0.0, deadline - time.monotonic()))


async def open_connection(path: str, busy_timeout_ms: int) -> aiosqlite.Connection:
    """An aiosqlite connection to `path`, set up (setup_connection). On any failure the
    connection is closed (its thread would otherwise keep the process alive) and
    DatabaseOpenError says which file and why."""
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:  # aiosqlite stops its thread itself when connect fails
        raise DatabaseOpenError(path, exc) from exc
    try:
        # aiosqlite's private _execute runs a function in its thread: one round trip
        await conn._execute(setup_connection, conn._conn, busy_timeout_ms)  # type: ignore[no-untyped-call]
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise DatabaseOpenError(path, exc) from exc
        raise
    return conn


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
