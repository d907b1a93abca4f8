"""Group commit (memory/group_commit.py): writes issued together share one transaction,
a failing statement fails only its own caller, cancelled waiters lose nothing, and the
event loop never waits for another process's lock. Each test reads back through a second
plain sqlite3 connection, as another process would."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tutti_mcp.memory import group_commit
from tutti_mcp.memory.connection import Database
from tutti_mcp.memory.runs.records import Checkpoint, RunRecord, RunStatus, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

INSERT = "INSERT INTO t (caller, n) VALUES (?, ?)"


@contextmanager
def other_process(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None, timeout=5)) as conn:
        yield conn


def rows(path: Path) -> list[tuple[str, int]]:
    with other_process(path) as conn:
        return conn.execute("SELECT caller, n FROM t ORDER BY caller, n").fetchall()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(tmp_path / "g.db")
    try:
        await db.call(lambda c: c.execute("CREATE TABLE t (caller TEXT NOT NULL, n INTEGER)"))
        yield db
    finally:
        await db.close()


async def transactions_of(db: Database) -> list[str]:
    """Records every transaction the connection begins from now on."""
    seen: list[str] = []
    trace = lambda sql: seen.append(sql) if sql.startswith("BEGIN") else None  # noqa: E731
    await db.run(db.sqlite.set_trace_callback, trace)
    return seen


async def test_two_checkpoints_issued_together_land_in_one_transaction(tmp_path: Path) -> None:
    async with await SqliteRunStore.open(tmp_path / "runs.db") as store:
        run = RunRecord("r1", "wf", RunStatus.RUNNING, {"steps": []}, {}, created_at=1.0)
        await store.create_run(run, ["a", "b"])
        transactions = await transactions_of(store.db)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for sid in ("a", "b"):
                    cp = Checkpoint(sid, 0, StepStatus.SUCCEEDED, sid, 1, 1.0, 2.0)
                    tg.start_soon(store.commit_checkpoint, "r1", cp)
        await store.db.run(store.db.sqlite.set_trace_callback, None)
        assert len(transactions) == 1
        with other_process(tmp_path / "runs.db") as conn:
            done = conn.execute("SELECT step_id, output FROM checkpoints ORDER BY step_id")
            assert done.fetchall() == [("a", '"a"'), ("b", '"b"')]


async def test_a_checkpoint_refused_in_a_shared_transaction_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with await SqliteRunStore.open(path) as store:
        run = RunRecord("r1", "wf", RunStatus.RUNNING, {"steps": []}, {}, created_at=1.0)
        await store.create_run(run, ["a", "b"])
        with other_process(path) as conn:
            conn.execute(
                "CREATE TRIGGER refuse_b BEFORE INSERT ON events WHEN NEW.step_id = 'b' "
                "BEGIN SELECT RAISE(ABORT, 'b refused'); END"
            )
        outcome: dict[str, str] = {}

        async def commit(sid: str) -> None:
            try:
                await store.commit_checkpoint(
                    "r1", Checkpoint(sid, 0, StepStatus.SUCCEEDED, sid, 1, 1.0, 2.0)
                )
                outcome[sid] = "committed"
            except sqlite3.IntegrityError as exc:
                outcome[sid] = str(exc)

        transactions = await transactions_of(store.db)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(commit, "a")
                tg.start_soon(commit, "b")
        await store.db.run(store.db.sqlite.set_trace_callback, None)
        assert len(transactions) == 1  # one transaction for both
        assert outcome == {"a": "committed", "b": "b refused"}
        with other_process(path) as conn:
            steps = conn.execute("SELECT step_id, status FROM steps ORDER BY step_id").fetchall()
            assert steps == [("a", "succeeded"), ("b", "pending")]  # b: no trace at all
            assert conn.execute("SELECT step_id FROM checkpoints").fetchall() == [("a",)]


async def test_a_failing_statement_fails_only_its_caller_and_the_writer_keeps_working(
    db: Database, tmp_path: Path
) -> None:
    await db.call(
        lambda c: c.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.n < 0 "
            "BEGIN SELECT RAISE(ABORT, 'negative n refused'); END"
        )
    )
    errors: dict[str, BaseException] = {}

    async def write(caller: str, ns: list[int]) -> None:
        try:
            await db.write([(INSERT, (caller, n)) for n in ns])
        except sqlite3.Error as exc:
            errors[caller] = exc

    before = db.write_statistics()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, "first", [1, 2])
            tg.start_soon(write, "bad", [3, -1])  # its first row is undone with the second
            tg.start_soon(write, "last", [4])
    assert db.write_statistics().batches - before.batches == 1  # all three in one batch

    assert list(errors) == ["bad"]
    error = errors["bad"]
    assert isinstance(error, sqlite3.IntegrityError)
    assert "negative n refused" in str(error)
    notes = " ".join(getattr(error, "__notes__", []))
    assert str(tmp_path / "g.db") in notes and "INSERT INTO t" in notes
    assert rows(tmp_path / "g.db") == [("first", 1), ("first", 2), ("last", 4)]

    await db.write([(INSERT, ("after", 5))])
    assert rows(tmp_path / "g.db")[0] == ("after", 5)


async def test_a_cancelled_waiter_loses_nothing_and_commits_once(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "g.db"
    with other_process(path) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(db.write, [(INSERT, ("sent", 1))])
                # the batch is tried on the loop, finds the lock taken and goes to the
                # writer's thread, which waits for the lock: the loop does not
                while db.write_statistics().on_thread == 0:
                    await anyio.lowlevel.checkpoint()
                assert db.write_statistics().batches == 0  # still in flight
                tg.cancel_scope.cancel()  # the waiter gives up while its batch is in flight
        holder.execute("COMMIT")
    with anyio.fail_after(10):
        await db.flush()
    assert rows(path) == [("sent", 1)]

    # and a waiter cancelled before its batch was handed over: committed all the same
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(db.write, [(INSERT, ("queued", 2))])
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        await db.flush()
    assert rows(path) == [("queued", 2), ("sent", 1)]


async def test_batches_are_cut_between_callers_and_a_big_caller_stays_whole(
    db: Database, tmp_path: Path
) -> None:
    limit = group_commit.INLINE_MAX_STATEMENTS
    before = db.write_statistics()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for k in range(4):  # together, more than one batch may hold
                tg.start_soon(db.write, [(INSERT, (f"c{k}", n)) for n in range(limit // 2 + 1)])
            tg.start_soon(db.write, [(INSERT, ("big", n)) for n in range(limit * 2)])
    after = db.write_statistics()
    assert after.batches - before.batches >= 3
    assert after.on_thread - before.on_thread >= 1  # big batches go to the writer's thread
    with other_process(tmp_path / "g.db") as conn:
        counts = dict(conn.execute("SELECT caller, count(*) FROM t GROUP BY caller").fetchall())
    assert counts == {**{f"c{k}": limit // 2 + 1 for k in range(4)}, "big": limit * 2}


async def test_the_wal_is_checkpointed_by_the_writers_thread(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "CHECKPOINT_EVERY", 5)
    with anyio.fail_after(10):
        for n in range(12):
            await db.write([(INSERT, ("c", n))])
        await db.close()  # waits for the thread, and so for its checkpoints
    assert db.write_statistics().checkpoints >= 2
    assert len(rows(tmp_path / "g.db")) == 12
