"""One conformance suite for the RunStore interface (memory/runs/records.py), run over every
store: the in-memory one (engine tests, `state_persistence: false`) and SQLite
(`:memory:`). A store passes when the same calls leave the same records behind.

Every timestamp is passed in, so whole records are compared at once. Pruning and orphan
marking are SQLite's own (not in the interface) and tested in test_sqlite_store.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from tutti_mcp.memory.runs.history import HistoryEntry, StepEntry
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.pipeline_rows import ItemRow, ItemState, PipelineMark, PipelineSnapshot
from tutti_mcp.memory.runs.records import (
    Checkpoint,
    Claim,
    Event,
    EventKind,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.memory.runs.store import RunNotFound, RunStore

pytestmark = pytest.mark.anyio

T = 1_700_000_000.0  # a fixed clock: records compare whole


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RunStore]:
    if request.param == "memory":
        yield InMemoryRunStore()
    else:
        async with await SqliteRunStore.open(":memory:") as s:
            yield s


def new_run(
    run_id: str,
    steps: Sequence[str] = ("a", "b", "c"),
    *,
    status: RunStatus = RunStatus.PENDING,
    owner: str | None = None,
    created_at: float = T,
    name: str = "wf",
) -> RunRecord:
    return RunRecord(
        id=run_id,
        name=name,
        status=status,
        spec={"name": name, "steps": [{"id": s} for s in steps]},
        inputs={"topic": "owls", "n": 3},
        created_at=created_at,
        owner=owner,
    )


async def created(store: RunStore, run: RunRecord) -> RunRecord:
    await store.create_run(run, [s["id"] for s in run.spec["steps"]])
    return run


def checkpoint(step_id: str, seq: int = 0, *, at: float = T, **kw: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "status": StepStatus.SUCCEEDED,
        "output": {"step": step_id},
        "attempts": 1,
        "started_at": at,
        "finished_at": at + 1,
        "executor": "builtin",
    }
    return Checkpoint(step_id=step_id, seq=seq, **(fields | kw))


async def kinds(store: RunStore, run_id: str, after: int = 0) -> list[tuple[str, str | None]]:
    return [(e.kind, e.step_id) for _, _, e in await store.events(run_id, after)]


# -- runs ----------------------------------------------------------------------------------


async def test_a_created_run_loads_back_whole_with_every_step_pending(store: RunStore) -> None:
    run = await created(store, new_run("r1"))
    loaded = await store.load_run("r1")
    assert loaded == RunRecord(
        id="r1",
        name="wf",
        status=RunStatus.PENDING,
        spec=run.spec,
        inputs={"topic": "owls", "n": 3},
        created_at=T,
        steps={s: StepRecord(s) for s in ("a", "b", "c")},
    )
    assert list(loaded.steps) == ["a", "b", "c"]


async def test_a_run_worked_through_start_to_failure_loads_back_as_every_store_keeps_it(
    store: RunStore,
) -> None:
    await created(store, new_run("r1"))
    assert await store.claim_run("r1", "me") == Claim(True, RunStatus.RUNNING, "me")
    await store.set_run("r1", started_at=T + 1)
    store.note_step_started("r1", "a", 1, T + 2)
    cp = checkpoint("a", at=T + 2, output={"n": 1}, usage={"input_tokens": 3})
    await store.commit_checkpoint("r1", cp)
    store.note_step_started("r1", "b", 2, T + 4)
    await store.set_step("r1", "b", StepStatus.FAILED, finished_at=T + 5, error="boom")
    await store.set_step("r1", "c", StepStatus.WAITING, detail={"instructions": "draw an owl"})
    metrics = {"steps": 3, "cost_usd": 0.5}
    await store.set_run(
        "r1", status=RunStatus.FAILED, finished_at=T + 6, error="b failed", metrics=metrics
    )

    run = await store.load_run("r1")
    assert run == RunRecord(
        id="r1",
        name="wf",
        status=RunStatus.FAILED,
        spec=new_run("r1").spec,
        inputs={"topic": "owls", "n": 3},
        created_at=T,
        started_at=T + 1,
        finished_at=T + 6,
        owner="me",
        error="b failed",
        metrics=metrics,
        steps={
            "a": StepRecord(
                "a",
                StepStatus.SUCCEEDED,
                attempts=1,
                executor="builtin",
                started_at=T + 2,
                finished_at=T + 3,
                output={"n": 1},
                usage={"input_tokens": 3},
                seq=1,
            ),
            "b": StepRecord(
                "b",
                StepStatus.FAILED,
                attempts=2,
                started_at=T + 4,
                finished_at=T + 5,
                error="boom",
            ),
            "c": StepRecord("c", StepStatus.WAITING, detail={"instructions": "draw an owl"}),
        },
    )
    assert await kinds(store, "r1") == [
        ("run_created", None),
        ("run_claimed", None),
        ("step_succeeded", "a"),
        ("step_failed", "b"),
        ("step_waiting", "c"),
        ("run_failed", None),
    ]


async def test_a_status_given_as_text_is_stored_as_the_status(store: RunStore) -> None:
    await created(store, new_run("r1"))
    await store.set_run("r1", status="cancelled")
    assert (await store.load_run("r1")).status is RunStatus.CANCELLED
    assert (await kinds(store, "r1"))[-1] == ("run_cancelled", None)


async def test_changing_a_loaded_record_does_not_change_the_stored_run(store: RunStore) -> None:
    await created(store, new_run("r1"))
    loaded = await store.load_run("r1")
    loaded.status = RunStatus.SUCCEEDED
    loaded.steps["a"].status = StepStatus.SUCCEEDED
    again = await store.load_run("r1")
    assert (again.status, again.steps["a"].status) == (RunStatus.PENDING, StepStatus.PENDING)


async def test_runs_are_listed_newest_first_filtered_by_status_and_limited(
    store: RunStore,
) -> None:
    await created(store, new_run("old", created_at=T))
    await created(store, new_run("mid", created_at=T + 1, status=RunStatus.SUCCEEDED))
    await created(store, new_run("new", created_at=T + 2))
    assert [r.id for r in await store.list_runs()] == ["new", "mid", "old"]
    assert [r.id for r in await store.list_runs(RunStatus.PENDING)] == ["new", "old"]
    assert [r.id for r in await store.list_runs(limit=2)] == ["new", "mid"]
    assert await store.list_runs(RunStatus.FAILED) == []


async def test_a_run_that_does_not_exist_is_reported_as_not_found(store: RunStore) -> None:
    await created(store, new_run("r1"))
    with pytest.raises(RunNotFound, match="nope"):
        await store.load_run("nope")
    with pytest.raises(RunNotFound, match="nope"):
        await store.claim_run("nope", "me")


@pytest.mark.parametrize(
    "fields",
    [{"bogus": 1}, {"id": "r2"}, {"created_at": 0.0}, {"steps": {}}],
    ids=["unknown", "id", "created_at", "steps"],
)
async def test_a_run_field_that_cannot_be_set_is_refused_by_name(
    store: RunStore, fields: dict[str, Any]
) -> None:
    await created(store, new_run("r1"))
    before = await store.load_run("r1")
    with pytest.raises(ValueError, match=f"unknown run fields \\['{next(iter(fields))}'\\]"):
        await store.set_run("r1", **fields)
    assert await store.load_run("r1") == before


# -- claims: one compare-and-set -----------------------------------------------------------


async def test_of_two_claims_on_a_run_nobody_executes_only_the_first_wins(
    store: RunStore,
) -> None:
    await created(store, new_run("r1"))
    assert await store.claim_run("r1", "first") == Claim(True, RunStatus.RUNNING, "first")
    assert await store.claim_run("r1", "second") == Claim(False, RunStatus.RUNNING, "first")
    assert (await store.load_run("r1")).owner == "first"


async def test_a_running_run_is_claimed_only_under_the_owner_found_dead(store: RunStore) -> None:
    await created(store, new_run("r1", status=RunStatus.RUNNING, owner="gone"))
    assert await store.claim_run("r1", "heir", dead_owner="other") == Claim(
        False, RunStatus.RUNNING, "gone"
    )
    assert await store.claim_run("r1", "heir", dead_owner="gone") == Claim(
        True, RunStatus.RUNNING, "heir"
    )
    assert await store.claim_run("r1", "late", dead_owner="gone") == Claim(
        False, RunStatus.RUNNING, "heir"
    )


@pytest.mark.parametrize("status", list(RunStatus), ids=[s.value for s in RunStatus])
async def test_a_run_is_claimable_exactly_when_its_status_is_resumable(
    store: RunStore, status: RunStatus
) -> None:
    await created(store, new_run("r1", status=status, owner="someone"))
    claim = await store.claim_run("r1", "me")
    if status.resumable:
        assert claim == Claim(True, RunStatus.RUNNING, "me")
    else:
        assert claim == Claim(False, status, "someone")
    assert (await store.load_run("r1")).status is claim.status
    assert (await kinds(store, "r1"))[1:] == ([("run_claimed", None)] if claim.won else [])


# -- steps and checkpoints -----------------------------------------------------------------


async def test_checkpoints_are_numbered_in_commit_order_after_the_highest_number(
    store: RunStore,
) -> None:
    await created(store, new_run("r1", ["a", "b", "c", "d"]))
    await store.commit_checkpoint("r1", checkpoint("b"))
    await store.commit_checkpoint("r1", checkpoint("a"))
    await store.commit_checkpoint("r1", checkpoint("c", seq=7))  # the runner numbers its own
    await store.commit_checkpoint("r1", checkpoint("d"))
    got = [(cp.step_id, cp.seq) for cp in await store.checkpoints("r1")]
    assert got == [("b", 1), ("a", 2), ("c", 7), ("d", 8)]
    assert {sid: rec.seq for sid, rec in (await store.load_run("r1")).steps.items()} == {
        "a": 2,
        "b": 1,
        "c": 7,
        "d": 8,
    }


async def test_a_step_committed_again_keeps_one_checkpoint_the_latest(store: RunStore) -> None:
    await created(store, new_run("r1"))
    await store.commit_checkpoint("r1", checkpoint("a", seq=1, output="first"))
    again = checkpoint(
        "a", seq=1, status=StepStatus.DEGRADED, output="default", attempts=3, error="timed out"
    )
    await store.commit_checkpoint("r1", again)
    assert await store.checkpoints("r1") == [again]
    rec = (await store.load_run("r1")).steps["a"]
    assert (rec.status, rec.output, rec.attempts, rec.error) == (
        StepStatus.DEGRADED,
        "default",
        3,
        "timed out",
    )


async def test_a_checkpoint_replaces_what_the_step_waited_with(store: RunStore) -> None:
    await created(store, new_run("r1"))
    await store.set_step("r1", "a", StepStatus.WAITING, detail={"request": "x"}, error="old")
    await store.commit_checkpoint("r1", checkpoint("a"))
    rec = (await store.load_run("r1")).steps["a"]
    assert (rec.status, rec.detail, rec.error) == (StepStatus.SUCCEEDED, None, None)


async def test_a_started_step_shows_running_with_its_attempt(store: RunStore) -> None:
    await created(store, new_run("r1"))
    store.note_step_started("r1", "b", 2, T + 9)
    rec = (await store.load_run("r1")).steps["b"]
    assert rec == StepRecord("b", StepStatus.RUNNING, attempts=2, started_at=T + 9)


async def test_reset_steps_go_back_to_pending_and_checkpoints_stay(store: RunStore) -> None:
    await created(store, new_run("r1"))
    await store.commit_checkpoint("r1", checkpoint("a"))
    store.note_step_started("r1", "b", 1, T)
    await store.set_step("r1", "b", StepStatus.FAILED, finished_at=T + 1, error="boom")
    await store.set_step("r1", "c", StepStatus.CANCELLED, finished_at=T + 1)
    await store.reset_steps("r1", ["b", "c"])
    steps = (await store.load_run("r1")).steps
    assert steps["a"].status is StepStatus.SUCCEEDED
    assert steps["a"].output == {"step": "a"}
    assert [(s.status, s.finished_at) for s in (steps["b"], steps["c"])] == [
        (StepStatus.PENDING, None),
        (StepStatus.PENDING, None),
    ]
    assert [cp.step_id for cp in await store.checkpoints("r1")] == ["a"]


@pytest.mark.parametrize("field", ["output", "seq", "bogus"])
async def test_a_step_field_that_cannot_be_set_is_refused_by_name(
    store: RunStore, field: str
) -> None:
    await created(store, new_run("r1"))
    with pytest.raises(ValueError, match=f"unknown step fields \\['{field}'\\]"):
        await store.set_step("r1", "a", StepStatus.FAILED, **{field: "x"})
    assert (await store.load_run("r1")).steps["a"] == StepRecord("a")


# -- events --------------------------------------------------------------------------------


async def test_events_come_in_order_per_run_and_after_a_given_id(store: RunStore) -> None:
    await created(store, new_run("r1"))
    await created(store, new_run("r2"))
    store.append_event(Event("r1", EventKind.CONDITION, data={"k": 1}))
    await store.commit_checkpoint("r1", checkpoint("a"))
    await store.set_step("r2", "a", StepStatus.SKIPPED)
    await store.set_step("r1", "b", StepStatus.SKIPPED)

    events = await store.events("r1")
    ids = [i for i, _, _ in events]
    assert ids == sorted(set(ids))
    assert [(e.kind, e.step_id) for _, _, e in events] == [
        ("run_created", None),
        ("condition", None),
        ("step_succeeded", "a"),
        ("step_skipped", "b"),
    ]
    assert events[1][2] == Event("r1", EventKind.CONDITION, data={"k": 1})
    assert await kinds(store, "r1", after=ids[1]) == [
        ("step_succeeded", "a"),
        ("step_skipped", "b"),
    ]
    assert await kinds(store, "r1", after=ids[-1]) == []
    assert await kinds(store, "r2") == [("run_created", None), ("step_skipped", "a")]
    # ids are one sequence across runs: a client can poll with the last id it saw
    r2_ids = [i for i, _, _ in await store.events("r2")]
    assert ids[0] < r2_ids[0] < ids[1] and ids[2] < r2_ids[1] < ids[3]


# -- workflow history ----------------------------------------------------------------------


def history_entry(
    run_id: str, at: float, status: RunStatus = RunStatus.SUCCEEDED, workflow: str = "wf"
) -> HistoryEntry:
    step = StepEntry("a", StepStatus.SUCCEEDED, 1, "builtin", 2.0)
    return HistoryEntry(run_id, workflow, status, at, 3.0, 0, (step,))


async def test_history_counts_each_run_once_newest_first_per_workflow(store: RunStore) -> None:
    await store.record_history(history_entry("r1", T))
    await store.record_history(history_entry("r2", T + 1, RunStatus.FAILED))
    await store.record_history(history_entry("r3", T + 2, workflow="other"))
    # r2 resumed and finished again: its entry is replaced, not added
    await store.record_history(history_entry("r2", T + 3))

    wf = await store.workflow_history("wf")
    assert (wf.runs, wf.outcomes, wf.last_status) == (2, {"succeeded": 2}, RunStatus.SUCCEEDED)
    assert wf.durations() == {"a": 2.0}
    newest = await store.workflow_history("wf", limit=1)
    assert (newest.runs, newest.last_status) == (1, RunStatus.SUCCEEDED)
    assert (await store.workflow_history("other")).runs == 1
    assert (await store.workflow_history("never-ran")).runs == 0


# -- pipeline steps ------------------------------------------------------------------------


async def test_pipeline_rows_and_mark_load_back_as_committed_and_later_rows_replace_earlier(
    store: RunStore,
) -> None:
    await created(store, new_run("r1"))
    assert await store.load_pipeline("r1", "a") == PipelineSnapshot(PipelineMark(), {})
    moving = {"item": "x", "out": ["X"], "skipped": 0}
    await store.commit_pipeline(
        "r1",
        "a",
        [ItemRow(0, 1, ItemState.MOVING, moving), ItemRow(1, 0, ItemState.DEAD, moving, "no", 3)],
        PipelineMark(frontier=0, sink_offset=0, sunk=0, dead=1, stats={"read": 2}),
    )
    await store.commit_pipeline(
        "r1",
        "a",
        [ItemRow(0, 2, ItemState.SUNK, "X!", pos=1)],
        PipelineMark(frontier=2, sink_offset=10, sunk=1, dead=1, stats={"read": 2}),
    )
    assert await store.load_pipeline("r1", "a") == PipelineSnapshot(
        PipelineMark(2, 10, 1, 1, {"read": 2}),
        {
            0: ItemRow(0, 2, ItemState.SUNK, "X!", pos=1),
            1: ItemRow(1, 0, ItemState.DEAD, moving, "no", 3),
        },
    )
    mark_only = await store.load_pipeline("r1", "a", rows=False)
    assert mark_only == PipelineSnapshot(PipelineMark(2, 10, 1, 1, {"read": 2}), {})
    assert await store.load_pipeline("r1", "b") == PipelineSnapshot(PipelineMark(), {})


async def test_pruning_drops_only_sunk_rows_before_the_point_given(store: RunStore) -> None:
    await created(store, new_run("r1"))
    rows = [ItemRow(i, 1, ItemState.SUNK, None, pos=i + 1) for i in range(6)]
    rows[2] = ItemRow(2, 0, ItemState.DEAD, {"item": 2, "out": []}, "boom", 1)
    await store.commit_pipeline("r1", "a", rows, PipelineMark(frontier=6, sunk=5, dead=1))
    await store.commit_pipeline("r1", "a", [], PipelineMark(frontier=6, sunk=5, dead=1), 4)
    snap = await store.load_pipeline("r1", "a")
    assert sorted(snap.rows) == [2, 4, 5]
