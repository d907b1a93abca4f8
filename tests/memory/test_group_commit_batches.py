"""How the group-commit writer applies a batch (memory/group_apply.py, group_commit.py): optimistically,
with no savepoint per caller, and again with one per caller only when a statement fails;
consecutive identical statements as one executemany, in order; on the event loop's thread
whenever the loop has nothing else ready. Read back through a second connection, as
another process would."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.memory import group_commit
from tutti_mcp.memory.connection import Database
from tutti_mcp.memory.group_apply import Batch, Call, Item, apply_batch

pytestmark = pytest.mark.anyio

INSERT = "INSERT INTO t (caller, n) VALUES (?, ?)"
REFUSE_NEGATIVE = (
    "CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.n < 0 "
    "BEGIN SELECT RAISE(ABORT, 'negative n refused'); END"
)


@contextmanager
def other_process(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None, timeout=5)) as conn:
        yield conn


def rows(path: Path) -> list[tuple[int, str, int]]:
    with other_process(path) as conn:
        return conn.execute("SELECT id, caller, n FROM t ORDER BY id").fetchall()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(tmp_path / "g.db")
    try:
        await db.call(
            lambda c: c.execute(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, caller TEXT NOT NULL, n INTEGER)"
            )
        )
        yield db
    finally:
        await db.close()


async def trace(db: Database) -> list[str]:
    """Every statement the connection runs from now on."""
    seen: list[str] = []
    await db.run(db.sqlite.set_trace_callback, seen.append)
    return seen


async def together(*calls: Callable[[], Any]) -> None:
    """Start the calls in one turn of the loop, so that their writes share a batch."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(call)


async def test_a_batch_whose_statements_all_succeed_has_no_savepoint_per_caller(
    db: Database, tmp_path: Path
) -> None:
    seen = await trace(db)
    before = db.write_statistics()
    await together(
        *(lambda k=k: db.write([(INSERT, (f"c{k}", k)), (INSERT, (f"c{k}", -k))]) for k in range(3))
    )
    await db.run(db.sqlite.set_trace_callback, None)
    assert db.write_statistics().batches - before.batches == 1
    assert [s for s in seen if "SAVEPOINT" in s or "ROLLBACK" in s] == ["SAVEPOINT batch"]
    assert [(c, n) for _, c, n in rows(tmp_path / "g.db")] == [
        ("c0", 0), ("c0", 0), ("c1", 1), ("c1", -1), ("c2", 2), ("c2", -2)
    ]  # fmt: skip


async def test_a_failing_caller_makes_the_batch_run_again_with_a_savepoint_per_caller(
    db: Database, tmp_path: Path
) -> None:
    await db.call(lambda c: c.execute(REFUSE_NEGATIVE))

    def count_and_insert(conn: sqlite3.Connection, caller: str) -> int:
        (n,) = conn.execute("SELECT count(*) FROM t").fetchone()
        conn.execute(INSERT, (caller, n))
        return int(n)

    errors: dict[str, BaseException] = {}
    counted: list[int] = []

    async def write(caller: str, ns: list[int]) -> None:
        try:
            await db.write([(INSERT, (caller, n)) for n in ns])
        except sqlite3.IntegrityError as exc:
            errors[caller] = exc

    async def transact() -> None:
        counted.append(await db.transact(count_and_insert, "call"))

    seen = await trace(db)
    await together(
        lambda: write("first", [1, 2]),
        transact,  # runs in the optimistic pass, is undone, and runs again
        lambda: write("bad", [3, -1]),
        lambda: write("last", [4]),
    )
    await db.run(db.sqlite.set_trace_callback, None)

    assert list(errors) == ["bad"]
    assert "negative n refused" in str(errors["bad"])
    assert seen.count("ROLLBACK TO batch") == 1
    assert seen.count("SAVEPOINT caller") == 4  # the second pass: one per caller
    # the call's second run saw the first caller's rows, as its result says; its first
    # run's row was undone with the rest of the optimistic pass
    assert counted == [2]
    assert [(c, n) for _, c, n in rows(tmp_path / "g.db")] == [
        ("first", 1), ("first", 2), ("call", 2), ("last", 4)
    ]  # fmt: skip


class Recording:
    """A sqlite3 connection that records how statements reach it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.calls: list[tuple[str, str, int]] = []  # (method, first word, rows)

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.calls.append(("execute", sql.split()[0], 1))
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, seq: list[Any]) -> sqlite3.Cursor:
        self.calls.append(("executemany", sql.split()[0], len(seq)))
        return self.conn.executemany(sql, seq)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction


def batch_of(*callers: list[Item]) -> Batch:
    batch = Batch()
    for ops in callers:
        batch.ops.extend(ops)
        batch.ends.append(len(batch.ops))
    return batch


def test_consecutive_identical_statements_reach_sqlite_as_one_executemany_in_order() -> None:
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, caller TEXT NOT NULL, n INTEGER)")
        update = "UPDATE t SET n = n * 10 WHERE caller = ?"
        batch = batch_of(
            [(INSERT, ("a", 1)), None, (INSERT, ("a", 2))],  # None: a statement taken back
            [(INSERT, ("b", 3)), (update, ("a",)), (update, ("b",))],
            [Call(lambda c: c.execute(INSERT, ("call", 5)), ()), (INSERT, ("c", 6))],
        )
        recording = Recording(conn)
        apply_batch(recording, batch, ":memory:", begun=False)  # type: ignore[arg-type]

        assert batch.errors == {}
        assert recording.calls == [
            ("execute", "BEGIN", 1),
            ("execute", "SAVEPOINT", 1),
            ("executemany", "INSERT", 3),  # across the first two callers: no savepoint between
            ("executemany", "UPDATE", 2),
            ("execute", "INSERT", 1),  # the call's own statement
            ("execute", "INSERT", 1),  # c's: the call stands between it and the others
            ("execute", "RELEASE", 1),
            ("execute", "COMMIT", 1),
        ]
        assert conn.execute("SELECT id, caller, n FROM t ORDER BY id").fetchall() == [
            (1, "a", 10), (2, "a", 20), (3, "b", 30), (4, "call", 5), (5, "c", 6)
        ]  # fmt: skip


def test_a_row_refused_inside_an_executemany_fails_only_its_own_caller() -> None:
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, caller TEXT NOT NULL, n INTEGER)")
        conn.execute(REFUSE_NEGATIVE)
        batch = batch_of(
            [(INSERT, ("a", 1)), (INSERT, ("a", 2))],
            [(INSERT, ("bad", 3)), (INSERT, ("bad", -1)), (INSERT, ("bad", 4))],
            [(INSERT, ("c", 5))],
        )
        apply_batch(conn, batch, "runs.db", begun=False)

        assert list(batch.errors) == [1]
        assert "negative n refused" in str(batch.errors[1])
        assert "runs.db: INSERT INTO t" in " ".join(getattr(batch.errors[1], "__notes__", []))
        assert not conn.in_transaction
        assert conn.execute("SELECT caller, n FROM t ORDER BY id").fetchall() == [
            ("a", 1), ("a", 2), ("c", 5)
        ]  # fmt: skip


def test_a_statement_that_returns_rows_is_never_run_through_executemany() -> None:
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, caller TEXT NOT NULL, n INTEGER)")
        returning = INSERT + " RETURNING id"
        batch = batch_of([(returning, ("a", 1)), (returning, ("a", 2))])
        recording = Recording(conn)
        apply_batch(recording, batch, ":memory:", begun=False)  # type: ignore[arg-type]

        assert batch.errors == {}
        assert [c for c in recording.calls if c[1] == "INSERT"] == [("execute", "INSERT", 1)] * 2
        assert conn.execute("SELECT n FROM t ORDER BY id").fetchall() == [(1,), (2,)]


async def test_a_big_batch_is_committed_on_the_loop_when_nothing_else_is_ready(
    db: Database, tmp_path: Path
) -> None:
    big = [(INSERT, ("big", n)) for n in range(group_commit.ON_LOOP_MAX_STATEMENTS * 2)]
    before = db.write_statistics()
    with anyio.fail_after(10):
        await db.write(big)
    after = db.write_statistics()
    assert (after.on_loop - before.on_loop, after.on_thread - before.on_thread) == (1, 0)

    # with other work ready on the loop, the writer's thread commits beside it instead
    loop = asyncio.get_running_loop()
    spinning = True

    def spin() -> None:  # always one callback ready to run
        if spinning:
            loop.call_soon(spin)

    loop.call_soon(spin)
    try:
        with anyio.fail_after(10):
            await db.write(big)
    finally:
        spinning = False
    done = db.write_statistics()
    assert (done.on_loop - after.on_loop, done.on_thread - after.on_thread) == (0, 1)
    assert len(rows(tmp_path / "g.db")) == len(big) * 2


async def test_a_write_cancelled_before_it_could_wait_is_committed_once(
    db: Database, tmp_path: Path
) -> None:
    before = db.write_statistics()
    with anyio.fail_after(10):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await db.write([(INSERT, ("cancelled", 1))])  # the loop is idle: committed at once
        await db.flush()
    assert db.write_statistics().batches - before.batches == 1
    assert [(c, n) for _, c, n in rows(tmp_path / "g.db")] == [("cancelled", 1)]


async def test_writes_that_commit_at_once_still_let_the_loop_run_other_callbacks(
    db: Database,
) -> None:
    loop = asyncio.get_running_loop()
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True

    loop.call_later(0, fire)  # a timer: nothing is ready, so the writes commit at once
    writes = 0
    while not fired and writes < 10_000:  # bounded: a loop that never turns never fires
        await db.write([(INSERT, ("chain", writes))])
        writes += 1
    assert fired
    assert db.write_statistics().on_thread == 0
