"""The SQLite run store: migrations, connection settings, atomic checkpoints, group
commit, orphan detection and pruning. Each test uses its own database file in tmp_path,
and reads back through a second (plain sqlite3) connection, as another process would."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio
import pytest

from tutti_mcp.memory.migrations import MIGRATIONS, apply_migrations
from tutti_mcp.memory.runs.owner import current_owner
from tutti_mcp.memory.runs.records import Checkpoint, RunRecord, RunStatus, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.memory.runs.tasks import TaskStore

pytestmark = pytest.mark.anyio

DAY = 86_400.0


@contextmanager
def reader(db: Path) -> Iterator[sqlite3.Connection]:
    """A second connection, read-only, like another process looking at the file."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        yield conn


def make_run(
    run_id: str,
    step_ids: list[str],
    *,
    status: RunStatus = RunStatus.PENDING,
    owner: str | None = None,
    created_at: float | None = None,
) -> RunRecord:
    return RunRecord(
        id=run_id,
        name="wf",
        status=status,
        spec={"name": "wf", "steps": [{"id": s} for s in step_ids]},
        inputs={},
        created_at=time.time() if created_at is None else created_at,
        owner=owner,
    )


def checkpoint(step_id: str, output: object = "out") -> Checkpoint:
    now = time.time()
    return Checkpoint(
        step_id=step_id,
        seq=0,
        status=StepStatus.SUCCEEDED,
        output=output,
        attempts=1,
        started_at=now - 0.1,
        finished_at=now,
        executor="builtin",
    )


def dead_owner() -> str:
    """An owner string whose process has exited (spawned here and waited for)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return f"{socket.gethostname()}:{proc.pid}:1"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SqliteRunStore]:
    async with await SqliteRunStore.open(db) as s:
        yield s


# -- migrations and connection settings ----------------------------------------------------


async def test_migrations_are_recorded_once_and_opening_the_file_again_applies_nothing(
    db: Path,
) -> None:
    async with await SqliteRunStore.open(db) as first:
        await first.create_run(make_run("r1", ["a"]), ["a"])
    async with await SqliteRunStore.open(db) as second:
        run = await second.load_run("r1")
        assert run.steps["a"].status is StepStatus.PENDING

    with reader(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]

    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert apply_migrations(conn) == []
        assert conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)


async def test_a_fresh_file_gets_every_migration_applied_in_order(db: Path) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert apply_migrations(conn) == [name for name, _ in MIGRATIONS]


def busy_timeout(conn: sqlite3.Connection) -> int:
    value: int = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    return value


async def test_the_store_uses_wal_mode_and_a_busy_timeout(db: Path) -> None:
    async with await SqliteRunStore.open(db, busy_timeout_ms=4321) as store:
        # The store's own connection: its pragmas are per connection.
        # Calls on its thread wait for other processes' locks that long; the commits and
        # reads the event loop's thread tries itself do not wait (memory/group_commit.py).
        assert await store.db.call(busy_timeout) == 4321
        assert (await store.db.fetchall("PRAGMA busy_timeout"))[0][0] == 0
        assert (await store.db.fetchall("PRAGMA journal_mode"))[0][0] == "wal"
    with reader(db) as conn:  # WAL is a property of the file: other connections see it too
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- checkpoints ---------------------------------------------------------------------------


async def test_a_checkpoint_commit_writes_checkpoint_step_status_and_event_together(
    db: Path, store: SqliteRunStore
) -> None:
    await store.create_run(make_run("r1", ["a", "b"]), ["a", "b"])
    await store.commit_checkpoint("r1", checkpoint("a", {"n": 1}))

    with reader(db) as conn:
        cps = conn.execute(
            "SELECT step_id, seq, status, output FROM checkpoints WHERE run_id='r1'"
        ).fetchall()
        steps = dict(conn.execute("SELECT step_id, status FROM steps WHERE run_id='r1'").fetchall())
        events = conn.execute(
            "SELECT kind, step_id FROM events WHERE run_id='r1' ORDER BY id"
        ).fetchall()
    assert cps == [("a", 1, "succeeded", '{"n":1}')]
    assert steps == {"a": "succeeded", "b": "pending"}
    assert events == [("run_created", None), ("step_succeeded", "a")]


async def test_a_checkpoint_whose_event_cannot_be_written_leaves_no_trace(
    db: Path, store: SqliteRunStore
) -> None:
    await store.create_run(make_run("r1", ["a"]), ["a"])
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute(
            "CREATE TRIGGER no_step_events BEFORE INSERT ON events WHEN NEW.kind = 'step_succeeded' "
            "BEGIN SELECT RAISE(ABORT, 'events are refused'); END"
        )

    with pytest.raises(sqlite3.IntegrityError, match="events are refused"):
        await store.commit_checkpoint("r1", checkpoint("a"))

    with reader(db) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0
        assert conn.execute("SELECT status FROM steps WHERE step_id='a'").fetchone()[0] == "pending"

    # the failed transaction was rolled back cleanly: the store still commits afterwards
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER no_step_events")
    await store.commit_checkpoint("r1", checkpoint("a"))
    run = await store.load_run("r1")
    assert (run.steps["a"].status, run.steps["a"].seq) == (StepStatus.SUCCEEDED, 1)


async def test_concurrent_checkpoints_share_commits_and_all_become_durable(
    db: Path, store: SqliteRunStore
) -> None:
    n = 200
    ids = [f"s{i}" for i in range(n)]
    await store.create_run(make_run("r1", ids), ids)
    before = store.db.write_statistics()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i, sid in enumerate(ids):
                tg.start_soon(store.commit_checkpoint, "r1", checkpoint(sid, i))

    after = store.db.write_statistics()
    assert after.waiters - before.waiters == n
    assert 0 < after.batches - before.batches < n  # commits issued together shared one
    with reader(db) as conn:
        rows = conn.execute(
            "SELECT step_id, seq, output FROM checkpoints WHERE run_id='r1'"
        ).fetchall()
        statuses = {r[0] for r in conn.execute("SELECT status FROM steps WHERE run_id='r1'")}
        events = conn.execute("SELECT count(*) FROM events WHERE kind='step_succeeded'").fetchone()[
            0
        ]
    assert sorted(r[1] for r in rows) == list(range(1, n + 1))  # one distinct seq per commit
    assert {r[0]: int(r[2]) for r in rows} == {sid: i for i, sid in enumerate(ids)}
    assert statuses == {"succeeded"}
    assert events == n


async def test_a_step_start_rides_along_with_the_next_durable_write(
    db: Path, store: SqliteRunStore
) -> None:
    await store.create_run(make_run("r1", ["a", "b"]), ["a", "b"])
    store.note_step_started("r1", "a", 1, time.time())
    with reader(db) as conn:
        assert conn.execute("SELECT status FROM steps WHERE step_id='a'").fetchone()[0] == "pending"
    await store.commit_checkpoint("r1", checkpoint("b"))
    with reader(db) as conn:
        assert dict(conn.execute("SELECT step_id, status FROM steps").fetchall()) == {
            "a": "running",
            "b": "succeeded",
        }


# -- orphans -------------------------------------------------------------------------------


async def test_a_run_owned_by_a_dead_process_is_marked_interrupted_with_its_running_steps(
    db: Path, store: SqliteRunStore
) -> None:
    orphan = make_run(
        "orphan", ["done", "busy", "later"], status=RunStatus.RUNNING, owner=dead_owner()
    )
    mine = make_run("mine", ["busy"], status=RunStatus.RUNNING, owner=current_owner())
    await store.create_run(orphan, ["done", "busy", "later"])
    await store.create_run(mine, ["busy"])
    await store.commit_checkpoint("orphan", checkpoint("done"))
    store.note_step_started("orphan", "busy", 1, time.time())
    store.note_step_started("mine", "busy", 1, time.time())

    assert await store.mark_orphans_interrupted() == ["orphan"]

    got = await store.load_run("orphan")
    assert (got.status, got.owner) == (RunStatus.INTERRUPTED, None)
    assert {s: r.status for s, r in got.steps.items()} == {
        "done": StepStatus.SUCCEEDED,
        "busy": StepStatus.INTERRUPTED,
        "later": StepStatus.PENDING,
    }
    alive = await store.load_run("mine")
    assert (alive.status, alive.owner) == (RunStatus.RUNNING, current_owner())
    assert alive.steps["busy"].status is StepStatus.RUNNING
    kinds = [e.kind for _, _, e in await store.events("orphan")]
    assert kinds[-1] == "run_interrupted"


async def test_a_run_whose_owner_pid_now_belongs_to_another_process_is_an_orphan(
    store: SqliteRunStore,
) -> None:
    # same pid as ours, but another start time: the pid was recycled
    recycled = f"{socket.gethostname()}:{current_owner().split(':')[1]}:999999999999"
    await store.create_run(make_run("r1", ["a"], status=RunStatus.RUNNING, owner=recycled), ["a"])
    assert await store.mark_orphans_interrupted() == ["r1"]
    assert (await store.load_run("r1")).status is RunStatus.INTERRUPTED


async def test_runs_owned_by_another_host_and_finished_runs_are_left_alone(
    store: SqliteRunStore,
) -> None:
    elsewhere = "some-other-host.invalid:1:1"
    await store.create_run(
        make_run("remote", ["a"], status=RunStatus.RUNNING, owner=elsewhere), ["a"]
    )
    await store.create_run(
        make_run("done", ["a"], status=RunStatus.SUCCEEDED, owner=dead_owner()), ["a"]
    )
    assert await store.mark_orphans_interrupted() == []
    assert (await store.load_run("remote")).status is RunStatus.RUNNING
    assert (await store.load_run("done")).status is RunStatus.SUCCEEDED


async def test_a_claim_takes_a_run_nobody_executes_and_only_once(store: SqliteRunStore) -> None:
    await store.create_run(make_run("r1", ["a"], status=RunStatus.INTERRUPTED), ["a"])
    first = await store.claim_run("r1", "host:1:1")
    second = await store.claim_run("r1", "host:2:2")
    assert (first.won, first.status, first.owner) == (True, RunStatus.RUNNING, "host:1:1")
    assert (second.won, second.status, second.owner) == (False, RunStatus.RUNNING, "host:1:1")
    run = await store.load_run("r1")
    assert (run.status, run.owner) == (RunStatus.RUNNING, "host:1:1")
    claimed = [e.data for _, _, e in await store.events("r1") if e.kind == "run_claimed"]
    assert claimed == [{"owner": "host:1:1", "previous_owner": None}]


async def test_a_claim_takes_a_run_still_running_only_under_the_owner_found_dead(
    store: SqliteRunStore,
) -> None:
    gone = dead_owner()
    await store.create_run(make_run("r1", ["a"], status=RunStatus.RUNNING, owner=gone), ["a"])
    # not without naming the dead owner, nor when another owner has it meanwhile
    assert not (await store.claim_run("r1", "host:1:1")).won
    assert not (await store.claim_run("r1", "host:1:1", dead_owner="host:9:9")).won
    assert (await store.claim_run("r1", "host:1:1", dead_owner=gone)).won
    assert not (await store.claim_run("r1", "host:2:2", dead_owner=gone)).won
    assert (await store.load_run("r1")).owner == "host:1:1"


async def test_finished_runs_are_not_claimed(store: SqliteRunStore) -> None:
    await store.create_run(make_run("done", ["a"], status=RunStatus.SUCCEEDED), ["a"])
    claim = await store.claim_run("done", "host:1:1")
    assert (claim.won, claim.status, claim.owner) == (False, RunStatus.SUCCEEDED, None)


# -- prune ---------------------------------------------------------------------------------


async def _seed_for_prune(store: SqliteRunStore) -> None:
    now = time.time()
    for run_id, status, age_days in [
        ("old_ok", RunStatus.SUCCEEDED, 40),
        ("old_failed", RunStatus.FAILED, 35),
        ("old_cancelled", RunStatus.CANCELLED, 50),
        ("old_interrupted", RunStatus.INTERRUPTED, 60),
        ("old_waiting", RunStatus.WAITING, 60),
        ("new_ok", RunStatus.SUCCEEDED, 1),
    ]:
        await store.create_run(
            make_run(run_id, ["a", "b"], status=status, created_at=now - age_days * DAY), ["a", "b"]
        )
        await store.commit_checkpoint(run_id, checkpoint("a"))


def _run_ids(db: Path, table: str) -> set[str]:
    col = "id" if table == "runs" else "run_id"
    with reader(db) as conn:
        return {r[0] for r in conn.execute(f"SELECT DISTINCT {col} FROM {table}")}


async def test_prune_deletes_old_finished_runs_with_their_steps_checkpoints_and_events(
    db: Path, store: SqliteRunStore
) -> None:
    await _seed_for_prune(store)

    assert await store.prune(older_than_s=30 * DAY) == 3

    kept = {"old_interrupted", "old_waiting", "new_ok"}  # resumable or recent runs stay
    for table in ("runs", "steps", "checkpoints", "events"):
        assert _run_ids(db, table) == kept, table


async def test_prune_deletes_the_tasks_of_pruned_runs_and_keeps_tasks_of_runs_elsewhere(
    db: Path, store: SqliteRunStore
) -> None:
    """A task's run may live on Temporal, not in this database: such a task is stored (no
    foreign key refuses it) and survives a prune; the task of a pruned run goes with it."""
    await _seed_for_prune(store)
    tasks = TaskStore(store.db)
    await tasks.create("old_ok", "workflow_start", None)
    await tasks.create("run_on_temporal", "workflow_start", None)

    await store.prune(older_than_s=30 * DAY)

    assert _run_ids(db, "tasks") == {"run_on_temporal"}


async def test_prune_keeps_the_newest_old_runs_when_asked(db: Path, store: SqliteRunStore) -> None:
    await _seed_for_prune(store)

    assert await store.prune(older_than_s=30 * DAY, keep_last=1) == 2

    assert _run_ids(db, "runs") == {"old_failed", "old_interrupted", "old_waiting", "new_ok"}
    assert _run_ids(db, "checkpoints") == {"old_failed", "old_interrupted", "old_waiting", "new_ok"}
