"""The one place that opens SQLite: how a connection is set up, and the thread that owns an
async connection.

Every SQLite connection of the run store, the memory files and the Models API cache comes
from here (`Database.open` for async code, `open_sync` for the CLI and plain threads), so
WAL, the busy timeout, migrations, the retries of a busy open (memory/busy.py) and closing
on failure are written once.

`Database` runs on aiosqlite's worker thread. Two of its members are private and are used
here only, nowhere else in tutti: `Connection._execute` (run any function on the
connection's thread, so a whole transaction is one round trip) and `Connection._conn`
(the sqlite3 connection that thread owns). tests/memory/test_connection.py pins the
aiosqlite versions they were read from.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite
import anyio

from tutti_mcp.memory.busy import retry_busy
from tutti_mcp.memory.errors import TuttiError
from tutti_mcp.memory.migrations import apply_migrations

P = ParamSpec("P")
T = TypeVar("T")

# The aiosqlite releases whose private members (above) were read; the pinning test fails
# outside this range, so an upgrade is a decision, not an accident.
AIOSQLITE_TESTED = ((0, 22), (0, 23))  # from (inclusive), to (exclusive): read in 0.22.1


class DatabaseOpenError(TuttiError):
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


def _make_parent(path: str) -> None:
    if path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseOpenError(path, exc) from exc


def open_sync(path: str | Path, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """A set-up sqlite3 connection (autocommit) for synchronous code. It may be handed to
    another thread, but used by one thread at a time. DatabaseOpenError, with the
    connection closed, when opening or setting up fails."""
    path = str(path)
    _make_parent(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DatabaseOpenError(path, exc) from exc
    try:
        setup_connection(conn, busy_timeout_ms)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise DatabaseOpenError(path, exc) from exc
        raise
    return conn


class Database:
    """One SQLite connection owned by one worker thread: every call runs on that thread,
    one after the other, so a function given to `call` is never interleaved with others."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._aconn = conn
        self.path = path

    @classmethod
    async def open(cls, path: str | Path, busy_timeout_ms: int = 10_000) -> Database:
        """Open (creating it if need be) and set up the database. On any failure the
        connection is closed (its thread would otherwise keep the process alive) and
        DatabaseOpenError says which file and why."""
        path = str(path)
        _make_parent(path)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:  # aiosqlite stops its thread itself when connect fails
            raise DatabaseOpenError(path, exc) from exc
        db = cls(conn, path)
        try:
            await db.call(setup_connection, busy_timeout_ms)  # one round trip
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise DatabaseOpenError(path, exc) from exc
            raise
        return db

    async def close(self) -> None:
        """Close the connection and stop its thread (waits for calls already queued)."""
        await self._aconn.close()

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection, for objects that bind to it (MemoryFiles). Use it only
        inside `run` or `call`, on the connection's thread."""
        conn: sqlite3.Connection = self._aconn._conn
        return conn

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the connection's thread."""
        result: T = await self._aconn._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        return result

    async def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(connection, *args, **kwargs)` on the connection's thread: a transaction
        written as a plain function costs one round trip."""
        result: T = await self._aconn._execute(fn, self.sqlite, *args, **kwargs)  # type: ignore[no-untyped-call]
        return result

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """The rows of one query."""
        return list(await self._aconn.execute_fetchall(sql, tuple(params)))
