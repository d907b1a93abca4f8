"""Opening a database under contention: several processes opening one new file at the same
moment all get a working store, and an open that fails closes its connection (whose
thread would otherwise keep the process alive) and says which file and why."""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from tests.line_process import LineProcess
from tests.test_durability import ROOT, cli_env, tutti_cmd
from tutti_mcp.memory.connection import DatabaseOpenError
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.memory.migrations import MIGRATIONS
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

PROCESSES = 6
ROUNDS = 20
ROUND_S = 30  # one round: every process has opened (or failed to open) its file

# Each process opens the file named on each line of its stdin, as soon as it reads it, and
# answers `ok` or the error. The test writes a line to every process at once: they open
# the same fresh file within a millisecond or so of each other.
OPENER = """
import sys, anyio
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

async def open_and_read(path):
    async with await SqliteRunStore.open(path) as store:
        await store.list_runs()

print("ready", flush=True)
for line in sys.stdin:
    try:
        anyio.run(open_and_read, line.strip())
    except BaseException as exc:
        print(f"error {type(exc).__name__}: {exc}", flush=True)
    else:
        print("ok", flush=True)
"""


def _kill_if_running(process: Process) -> None:
    if process.returncode is None:
        process.kill()


@asynccontextmanager
async def openers(n: int) -> AsyncIterator[list[LineProcess]]:
    async with AsyncExitStack() as stack:
        procs = []
        for _ in range(n):
            process = await anyio.open_process(
                [sys.executable, "-c", OPENER], cwd=ROOT, env=cli_env()
            )
            stack.push_async_callback(process.aclose)
            stack.callback(_kill_if_running, process)
            procs.append(LineProcess(process))
        with anyio.fail_after(ROUND_S):
            assert [await p.line() for p in procs] == ["ready"] * n
        yield procs


async def test_processes_opening_one_fresh_file_together_all_get_a_working_store(
    tmp_path: Path,
) -> None:
    answers: list[str] = []
    async with openers(PROCESSES) as procs:
        for n in range(ROUNDS):
            db = tmp_path / f"fresh-{n}.db"
            for p in procs:  # no await between processes but the pipe writes
                await p.send(str(db))
            with anyio.fail_after(ROUND_S):
                answers += [await p.line() for p in procs]
            with closing(sqlite3.connect(db)) as conn:
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                applied = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")]
                assert applied == [name for name, _ in MIGRATIONS]
    failed = [a for a in answers if a != "ok"]
    assert not failed, f"{len(failed)} of {len(answers)} opens failed: {sorted(set(failed))}"


async def test_opening_waits_for_a_writer_instead_of_failing_at_the_switch_to_wal(
    tmp_path: Path,
) -> None:
    """While another connection holds the write lock, `PRAGMA journal_mode = WAL` answers
    "database is locked" at once: SQLite does not call the busy handler there. The open
    must keep trying until the writer is done (here: until it has waited a second)."""
    db = tmp_path / "busy.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as writer:
        writer.execute("CREATE TABLE other (x)")  # a file another program created and uses
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO other VALUES (1)")
        outcome: list[SqliteRunStore | DatabaseOpenError] = []
        done = anyio.Event()

        async def open_it() -> None:
            try:
                outcome.append(await SqliteRunStore.open(db))
            except DatabaseOpenError as exc:
                outcome.append(exc)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(open_it)
            with anyio.move_on_after(1):  # an open that gives up does so well within this
                await done.wait()
            assert not outcome, f"the open did not wait for the writer: {outcome}"
            writer.execute("COMMIT")
            with anyio.fail_after(10):
                await done.wait()
    store = outcome[0]
    assert isinstance(store, SqliteRunStore), store
    async with store:
        assert (await store.db.fetchall("PRAGMA journal_mode"))[0][0] == "wal"


# -- a failed open -----------------------------------------------------------------------------


def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite database, whatever its name says\n" * 100)
    return path


def aiosqlite_threads() -> list[threading.Thread]:
    """aiosqlite's worker threads (not daemons: one left running keeps the process alive)."""
    return [
        t
        for t in threading.enumerate()
        if getattr(getattr(t, "_target", None), "__name__", "") == "_connection_worker_thread"
    ]


async def test_a_failed_open_closes_its_connection_and_names_the_file(tmp_path: Path) -> None:
    path = not_a_database(tmp_path)
    before = aiosqlite_threads()
    with pytest.raises(DatabaseOpenError) as raised:
        await SqliteRunStore.open(path)
    assert str(raised.value) == f"cannot open the database {path}: file is not a database"
    with pytest.raises(DatabaseOpenError):
        await AsyncMemoryFiles.open(path)
    with pytest.raises(DatabaseOpenError):
        MemoryFiles.open(path)
    with anyio.fail_after(5):  # a closed connection's thread ends once it has stopped
        for thread in aiosqlite_threads():
            if thread not in before:
                await anyio.to_thread.run_sync(thread.join)
    # only threads this test started: another test's closed connection may end meanwhile
    assert [t for t in aiosqlite_threads() if t not in before] == []


async def test_an_open_that_stays_locked_gives_up_at_the_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("PRAGMA journal_mode = DELETE")  # the new store must switch it to WAL
        holder.execute("BEGIN EXCLUSIVE")  # nobody else reads or writes until it ends
        before = aiosqlite_threads()
        with anyio.fail_after(10), pytest.raises(DatabaseOpenError) as raised:
            await SqliteRunStore.open(db, busy_timeout_ms=200)
        assert str(raised.value) == f"cannot open the database {db}: database is locked"
        holder.execute("ROLLBACK")
    with anyio.fail_after(5):
        for thread in aiosqlite_threads():
            if thread not in before:
                await anyio.to_thread.run_sync(thread.join)
    async with await SqliteRunStore.open(db) as store:  # once free, it opens
        assert await store.list_runs() == []


async def test_the_cli_reports_a_database_it_cannot_open_and_exits(tmp_path: Path) -> None:
    path = not_a_database(tmp_path)
    with anyio.fail_after(30):  # before the fix the process printed a traceback and hung
        done = await anyio.run_process(
            tutti_cmd(path, "runs"), cwd=ROOT, env=cli_env(), check=False
        )
    assert done.returncode == 2
    assert done.stdout == b""
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr
    assert f"cannot open the database {path}: file is not a database" in " ".join(stderr.split())
