"""The one place that opens SQLite: how a connection is set up, the thread that owns an
async connection, and the writer that commits on it.

Every SQLite connection of the run store, the memory files and the Models API cache comes
from here (`Database.open` for async code, `open_sync` for the CLI and plain threads), so
WAL, the busy timeout, migrations, the retries of a busy open (memory/busy.py) and closing
on failure are written once.

`Database` runs reads and `call`s on aiosqlite's worker thread. Two of its members are
private and are used here only, nowhere else in tutti: `Connection._execute` (run any
function on the connection's thread, so a whole transaction is one round trip) and
`Connection._conn` (the sqlite3 connection that thread owns). tests/memory/test_connection.py
pins the aiosqlite versions they were read from.

Writes that many callers issue (the run store's checkpoints) go through `Database.write`:
group commit, see memory/group_commit.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite
import anyio

from tutti_mcp.memory.busy import is_busy, retry_busy
from tutti_mcp.memory.errors import TuttiError
from tutti_mcp.memory.group_commit import (
    Call,
    GroupWriter,
    Guard,
    Op,
    Ticket,
    WriterStatistics,
)
from tutti_mcp.memory.migrations import apply_migrations

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["Database", "DatabaseOpenError", "Op", "Ticket", "WriterStatistics", "open_sync"]

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


def _locked(guard: Guard, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
    with guard.on_thread():
        return fn(*args, **kwargs)


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


@dataclass(frozen=True)
class _Setup:
    path: str
    busy_timeout_ms: int
    in_memory: bool


class Database:
    """One SQLite connection. Reads and `call`s run on aiosqlite's worker thread, one after
    the other; `write` commits through a group-commit writer that uses the same connection
    (a lock keeps the two apart, so no call ever sees another's open transaction)."""

    def __init__(self, conn: aiosqlite.Connection, setup: _Setup) -> None:
        self._aconn = conn
        self.path = setup.path
        self._guard = Guard(conn._conn, setup.busy_timeout_ms)
        self._writer = GroupWriter(
            self._guard,
            path=setup.path,
            loop=asyncio.get_running_loop(),
            open_checkpointer=None
            if setup.in_memory
            else (lambda: open_sync(setup.path, setup.busy_timeout_ms)),
        )

    @classmethod
    async def open(cls, path: str | Path, busy_timeout_ms: int = 10_000) -> Database:
        """Open (creating it if need be) and set up the database. On any failure the
        connection is closed (its thread would otherwise keep the process alive) and
        DatabaseOpenError says which file and why."""
        path = str(path)
        _make_parent(path)
        try:
            # the writer commits on the event loop's thread or its own (group_commit.py),
            # never while another thread uses the connection
            conn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # aiosqlite stops its thread itself when connect fails
            raise DatabaseOpenError(path, exc) from exc
        setup = _Setup(path, busy_timeout_ms, in_memory=path == ":memory:" or path == "")
        try:
            await conn._execute(setup_connection, conn._conn, busy_timeout_ms)  # type: ignore[no-untyped-call]
            if not setup.in_memory:
                # The writer's thread copies the WAL back into the file (a checkpoint, which
                # syncs it) instead of whichever commit crosses SQLite's threshold, which
                # may be one committed on the event loop's thread (memory/group_commit.py).
                await conn.execute("PRAGMA wal_autocheckpoint = 0")
            await conn.execute("PRAGMA busy_timeout = 0")  # at rest (group_commit.Guard)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise DatabaseOpenError(path, exc) from exc
            raise
        return cls(conn, setup)

    async def close(self) -> None:
        """Commit what is queued, stop the writer's thread, close the connection and stop
        its thread (waits for calls already queued)."""
        try:
            await self._writer.close()
        finally:
            await self._aconn.close()

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection, for objects that bind to it (MemoryFiles). Use it only
        inside `run` or `call`, on the connection's thread."""
        conn: sqlite3.Connection = self._aconn._conn
        return conn

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the connection's thread."""
        self._writer.note_outside_write()
        result: T = await self._aconn._execute(_locked, self._guard, fn, args, kwargs)  # type: ignore[no-untyped-call]
        return result

    async def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(connection, *args, **kwargs)` on the connection's thread: a transaction
        written as a plain function costs one round trip."""
        self._writer.note_outside_write()
        result: T = await self._aconn._execute(  # type: ignore[no-untyped-call]
            _locked, self._guard, fn, (self.sqlite, *args), kwargs
        )
        return result

    async def fetchall(
        self, sql: str, params: Iterable[Any] = (), *, large: bool = False
    ) -> list[Any]:
        """The rows of one query. Read on the event loop's thread when the connection is
        free: a small query costs less than the round trip to a thread, which moreover
        waits for the GIL while the loop is busy (37-97 ms per read with 1,000 runs
        starting). `large`: the result may be big (a whole run's steps or events), so it is
        read on the connection's thread and the loop is not held meanwhile."""
        params = tuple(params)
        if not large and self._guard.lock.acquire(blocking=False):
            try:
                rows = _fetchall(self.sqlite, sql, params)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):  # busy: the thread waits for the lock instead
                    raise
            else:
                await asyncio.sleep(0)  # a read is a checkpoint, as a round trip would be
                return rows
            finally:
                self._guard.lock.release()
        on_thread: list[Any] = await self._aconn._execute(  # type: ignore[no-untyped-call]
            _locked, self._guard, _fetchall, (self.sqlite, sql, params), {}
        )
        return on_thread

    # -- group commit (memory/group_commit.py) ---------------------------------------------
    def queue(self, sql: str, params: tuple[Any, ...]) -> Ticket:
        """Queue a statement to ride along with the next commit (not durable by itself)."""
        return self._writer.queue((sql, params))

    def queued(self, ticket: Ticket) -> bool:
        """Whether the statement is still queued (can be taken back)."""
        return self._writer.queued(ticket)

    def unqueue(self, ticket: Ticket) -> bool:
        """Drop a queued statement not yet handed to SQLite; False when it already was."""
        return self._writer.unqueue(ticket)

    async def write(self, ops: Iterable[Op]) -> None:
        """Commit `ops` (with whatever is queued) in one transaction with other writers'
        ops, and return once it is committed. If one of these statements fails, none of
        them is applied and its sqlite3 error is raised here; other callers' ops in the same
        transaction are committed all the same."""
        await self._writer.write(ops)

    async def transact(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(connection, *args)` inside the next group commit's transaction (it must not
        begin or end one itself), its result once committed. Its exception, or a failing
        statement's, undoes only what it did, and is raised here. When another caller's
        statement in the same batch fails, `fn` runs again after its first run is undone:
        it must act on the connection only."""
        if kwargs:
            raise TypeError("transact passes positional arguments only")
        call = Call(fn, args)
        await self._writer.write((call,))
        result: T = call.result
        return result

    async def flush(self) -> None:
        """Return once every write queued or handed to SQLite so far is committed."""
        await self._writer.flush()

    def write_statistics(self) -> WriterStatistics:
        return self._writer.statistics()
