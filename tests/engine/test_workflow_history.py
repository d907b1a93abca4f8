"""Workflow memory: what a finished run records per workflow name (step outcomes and
durations, condition decisions, the run's outcome), how both stores read it back, and
how planning and the scheduler use the recorded durations.

Steps take time on a fake clock (EngineConfig.clock): the executor advances it by a
set duration per step, so every duration is exact and nothing sleeps."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import tutti_mcp.memory.runs.history as history
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.plan import EstimateSource
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.history import (
    DecisionEntry,
    DecisionHistory,
    HistoryEntry,
    HistoryWriteError,
    StepEntry,
    StepHistory,
    WorkflowHistory,
)
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunStatus, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.memory.runs.store import RunStore

pytestmark = pytest.mark.anyio

T0 = 1_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class TimedExecutor:
    """Builtin steps that take `durations[step_id]` seconds of the fake clock; steps in
    `fail_once` fail (not retryably) the first time they run. Records the start order."""

    def __init__(
        self, clock: Clock, durations: dict[str, float], fail_once: set[str] | None = None
    ) -> None:
        self.clock = clock
        self.durations = durations
        self.fail_once = set(fail_once or ())
        self.started: list[str] = []
        self._builtin = BuiltinExecutor()

    async def execute(self, call: StepCall) -> StepOutcome:
        sid = call.step.id
        self.started.append(sid)
        self.clock.now += self.durations.get(sid, 0.0)
        if sid in self.fail_once:
            self.fail_once.discard(sid)
            raise StepError(f"{sid} broke", retryable=False)
        return await self._builtin.execute(call)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RunStore]:
    if request.param == "memory":
        yield InMemoryRunStore()
        return
    async with await SqliteRunStore.open(":memory:") as s:
        yield s


def timed_engine(
    store: RunStore, durations: dict[str, float], fail_once: set[str] | None = None
) -> tuple[Engine, TimedExecutor, Clock]:
    clock = Clock()
    executor = TimedExecutor(clock, durations, fail_once)
    config = EngineConfig(clock=clock, rand=lambda: 0.5)
    return Engine(store, {ExecutorKind.BUILTIN: executor}, config), executor, clock


TRIAGE: dict[str, Any] = {
    "name": "triage",
    "inputs": {"urgent": True},
    "steps": [
        {"id": "fetch", "args": "report"},
        {"id": "escalate", "depends_on": ["fetch"], "when": "${inputs.urgent}", "args": "page"},
        {"id": "archive", "depends_on": ["fetch"], "when": "${not inputs.urgent}", "args": "file"},
        {"id": "after_archive", "args": "${archive.output} filed"},
        {
            "id": "check",
            "depends_on": ["fetch"],
            "op": "parse_json",
            "args": "{not json",
            "on_failure": "continue",
        },
    ],
}


# -- recording -------------------------------------------------------------------------------
async def test_a_finished_run_records_its_step_durations_outcomes_and_condition_decisions(
    store: RunStore,
) -> None:
    engine, _, _ = timed_engine(store, {"fetch": 2.0, "escalate": 3.0, "check": 0.5})
    with anyio.fail_after(5):
        run = await engine.run(TRIAGE)
        got = await store.workflow_history("triage")
    assert run.status is RunStatus.SUCCEEDED
    skipped = {"skipped": 1}
    assert got == WorkflowHistory(
        name="triage",
        runs=1,
        outcomes={"succeeded": 1},
        median_run_s=5.5,
        last_status=RunStatus.SUCCEEDED,
        steps={
            "fetch": StepHistory("fetch", 1, {"succeeded": 1}, 1, 2.0, 2.0, 0, "builtin"),
            "escalate": StepHistory("escalate", 1, {"succeeded": 1}, 1, 3.0, 3.0, 0, "builtin"),
            "archive": StepHistory("archive", 1, skipped, 0, None, None, 0, "builtin"),
            # skipped because `archive` was: its own condition was never evaluated
            "after_archive": StepHistory("after_archive", 1, skipped, 0, None, None, 0, "builtin"),
            "check": StepHistory("check", 1, {"failed": 1}, 1, 0.5, 0.5, 0, "builtin"),
        },
        decisions={
            "escalate": DecisionHistory("escalate", "${inputs.urgent}", 1, 0, 0),
            "archive": DecisionHistory("archive", "${not inputs.urgent}", 0, 1, 0),
        },
    )
    assert got.durations() == {"fetch": 2.0, "escalate": 3.0, "check": 0.5}
    assert got.summary() == {
        "runs": 1,
        "outcomes": {"succeeded": 1},
        "success_rate": 1.0,
        "median_run_s": 5.5,
        "step_failures": {"check": 1},
        "decisions": {
            "escalate": {"when": "${inputs.urgent}", "true": 1, "false": 0},
            "archive": {"when": "${not inputs.urgent}", "true": 0, "false": 1},
        },
    }


async def test_a_run_waiting_for_the_client_is_not_recorded_until_it_finishes(
    store: RunStore,
) -> None:
    clock = Clock()
    engine = Engine(
        store,
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(clock=clock),
    )
    spec = {"name": "asks", "steps": [{"id": "ask", "prompt": "hi", "run": "client"}]}
    with anyio.fail_after(5):
        run = await engine.run(spec)
        assert run.status is RunStatus.WAITING
        assert (await store.workflow_history("asks")).runs == 0
        clock.now += 7.0
        await engine.complete_step(run.id, "ask", output="hello")
        run = await engine.resume(run.id)
        got = await store.workflow_history("asks")
    assert run.status is RunStatus.SUCCEEDED
    assert (got.runs, got.steps["ask"].median_s, got.steps["ask"].executor) == (1, 7.0, "client")


async def test_a_resumed_run_that_finishes_replaces_its_entry(store: RunStore) -> None:
    spec = {
        "name": "flaky",
        "inputs": {"go": True},
        "steps": [
            {"id": "gate", "when": "${inputs.go}", "args": "open"},
            {"id": "work", "depends_on": ["gate"], "args": "${gate.output} and done"},
        ],
    }
    engine, _, clock = timed_engine(store, {"gate": 2.0, "work": 3.0}, fail_once={"work"})
    with anyio.fail_after(5):
        failed = await engine.run(spec)
        first = await store.workflow_history("flaky")
        clock.now += 100.0  # the user fixes something, then resumes
        resumed = await engine.resume(failed.id)
        second = await store.workflow_history("flaky")
    assert (failed.status, resumed.status) == (RunStatus.FAILED, RunStatus.SUCCEEDED)
    assert (first.runs, first.outcomes, first.steps["work"].outcomes) == (
        1,
        {"failed": 1},
        {"failed": 1},
    )
    assert first.median_run_s == 5.0
    # one entry, now the finished run's: `gate` ran in the first execution, `work` in the
    # second (its second attempt); the condition held, though the resume did not evaluate it
    assert second == WorkflowHistory(
        name="flaky",
        runs=1,
        outcomes={"succeeded": 1},
        median_run_s=None,  # the resumed execution ran only part of the run
        last_status=RunStatus.SUCCEEDED,
        steps={
            "gate": StepHistory("gate", 1, {"succeeded": 1}, 1, 2.0, 2.0, 0, "builtin"),
            "work": StepHistory("work", 1, {"succeeded": 1}, 1, 3.0, 3.0, 1, "builtin"),
        },
        decisions={"gate": DecisionHistory("gate", "${inputs.go}", 1, 0, 0)},
    )


async def test_a_fork_does_not_count_the_steps_it_kept_from_its_parent(store: RunStore) -> None:
    spec = {
        "name": "forked",
        "steps": [
            {"id": "a", "args": "a"},
            {"id": "b", "depends_on": ["a"], "args": "${a.output}b"},
        ],
    }
    engine, _, clock = timed_engine(store, {"a": 2.0, "b": 3.0})
    with anyio.fail_after(5):
        parent = await engine.run(spec)
        clock.now += 10.0
        child_id, kept = await engine.fork(parent.id, from_step="b")
        child = await engine.execute(child_id)
        got = await store.workflow_history("forked")
    assert (kept, child.status) == (["a"], RunStatus.SUCCEEDED)
    assert got.runs == 2
    assert (got.steps["a"].runs, got.steps["a"].measured) == (2, 1)
    assert (got.steps["b"].runs, got.steps["b"].measured) == (2, 2)
    assert got.median_run_s == 5.0  # the fork restored a step: only the parent ran it all


async def test_a_history_that_cannot_be_written_is_logged_and_the_run_still_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenHistory(InMemoryRunStore):
        async def record_history(self, entry: HistoryEntry) -> None:
            raise HistoryWriteError(entry.run_id, sqlite3.OperationalError("disk I/O error"))

    store = BrokenHistory()
    engine, _, _ = timed_engine(store, {"fetch": 1.0})
    with caplog.at_level(logging.WARNING, logger="tutti.runner"), anyio.fail_after(5):
        run = await engine.run(TRIAGE)
    assert run.status is RunStatus.SUCCEEDED
    assert (await store.load_run(run.id)).status is RunStatus.SUCCEEDED
    [record] = caplog.records
    assert f"run {run.id} finished; its workflow history was not recorded" in record.message
    assert "disk I/O error" in str(record.exc_info[1] if record.exc_info else None)


async def test_a_failed_history_write_leaves_the_sqlite_store_usable(tmp_path: Path) -> None:
    async with await SqliteRunStore.open(tmp_path / "runs.db") as store:
        await store.record_history(entry("r1", 10.0))
        bad = HistoryEntry("r2", "wf", RunStatus.SUCCEEDED, 20.0, 1.0, 0, (step("x", 1.0),) * 2)
        with pytest.raises(HistoryWriteError, match="history of run r2 not recorded"):
            await store.record_history(bad)  # the same step twice: a key violation
        engine, _, _ = timed_engine(store, {"fetch": 1.0})
        with anyio.fail_after(5):
            run = await engine.run(TRIAGE)
        assert run.status is RunStatus.SUCCEEDED
        assert (await store.workflow_history("wf")).runs == 1  # r2 rolled back whole
        assert (await store.workflow_history("triage")).runs == 1


# -- planning and scheduling ----------------------------------------------------------------
BRANCHES: dict[str, Any] = {
    "name": "branches",
    "max_concurrency": 1,
    "steps": [
        {"id": "left", "args": "l"},
        {"id": "left2", "args": "${left.output}2"},
        {"id": "right", "args": "r"},
        {"id": "right2", "args": "${right.output}2"},
        {"id": "join", "args": "${left2.output} ${right2.output}"},
    ],
}


async def test_recorded_durations_flip_the_critical_path_and_the_order_steps_start(
    store: RunStore,
) -> None:
    durations = {"left": 1.0, "left2": 1.0, "right": 4.0, "right2": 4.0}
    engine, executor, _ = timed_engine(store, durations)
    wf = engine.compile(BRANCHES)
    with anyio.fail_after(5):
        before, _ = await engine.plan_with_history(wf)
        await engine.run(BRANCHES)
        first_order = list(executor.started)
        executor.started.clear()
        after, seen = await engine.plan_with_history(wf)
        await engine.run(BRANCHES)
    # with default estimates the branches tie and the first in the spec wins
    assert before.critical_path == ["left", "left2", "join"]
    assert {s.estimate_from for s in before.steps.values()} == {EstimateSource.DEFAULT}
    assert first_order[0] == "left"
    # measured, the right branch is the long one: the plan and the scheduler follow
    assert seen.runs == 1
    assert (after.critical_path, after.critical_path_s) == (["right", "right2", "join"], 8.0)
    assert {s.id: s.estimate_s for s in after.steps.values()} == {**durations, "join": 0.0}
    assert {s.estimate_from for s in after.steps.values()} == {EstimateSource.HISTORY}
    assert after.steps["right"].priority > after.steps["left"].priority
    assert executor.started == ["right", "right2", "left", "left2", "join"]


async def test_a_step_estimate_in_the_spec_wins_over_history(store: RunStore) -> None:
    engine, _, _ = timed_engine(store, {"left": 1.0, "right": 4.0, "right2": 4.0})
    spec = {
        **BRANCHES,
        "steps": [{**BRANCHES["steps"][0], "estimate_s": 20.0}, *BRANCHES["steps"][1:]],
    }
    wf = engine.compile(spec)
    with anyio.fail_after(5):
        await engine.run(spec)
        plan, _ = await engine.plan_with_history(wf)
    assert (plan.steps["left"].estimate_s, plan.steps["left"].estimate_from) == (
        20.0,
        EstimateSource.SPEC,
    )
    assert plan.critical_path == ["left", "left2", "join"]


# -- the stores, side by side ----------------------------------------------------------------
def step(sid: str, duration: float | None, status: StepStatus = StepStatus.SUCCEEDED) -> StepEntry:
    return StepEntry(sid, status, 1 if duration is None else 2, "shell", duration)


def entry(
    run_id: str,
    finished_at: float,
    *,
    workflow: str = "wf",
    status: RunStatus = RunStatus.SUCCEEDED,
    x: float | None = 1.0,
    restored: int = 0,
    taken: bool | None = True,
    condition: str = "${inputs.go}",
) -> HistoryEntry:
    return HistoryEntry(
        run_id=run_id,
        workflow=workflow,
        status=status,
        finished_at=finished_at,
        duration_s=finished_at / 10,
        restored=restored,
        steps=(step("x", x), step("y", None, StepStatus.SKIPPED)),
        decisions=(DecisionEntry("y", condition, taken),),
    )


async def test_both_stores_keep_and_summarise_history_the_same_way(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "HISTORY_KEEP", 5)
    for e in [
        entry("r1", 10.0, x=100.0),  # dropped: beyond HISTORY_KEEP
        entry("r2", 20.0, x=1.0, condition="${inputs.old}"),  # another condition text
        entry("r3", 30.0, status=RunStatus.FAILED, x=None, taken=None),
        entry("r4", 40.0, x=3.0, restored=1, taken=False),
        entry("r5", 50.0, x=9.0),  # replaced below
        entry("other", 60.0, workflow="another", x=7.0),
    ]:
        await store.record_history(e)
    await store.record_history(entry("r5", 50.0, x=2.0))  # the run finished again
    await store.record_history(entry("r6", 60.0, status=RunStatus.CANCELLED, x=5.0))

    newest_three = await store.workflow_history("wf", limit=3)
    everything = await store.workflow_history("wf")

    assert newest_three == WorkflowHistory(
        name="wf",
        runs=3,
        outcomes={"cancelled": 1, "succeeded": 2},
        median_run_s=5.5,  # r6 and r5; r4 was resumed
        last_status=RunStatus.CANCELLED,
        steps={
            "x": StepHistory("x", 3, {"succeeded": 3}, 3, 3.0, 5.0, 3, "shell"),
            "y": StepHistory("y", 3, {"skipped": 3}, 0, None, None, 0, "shell"),
        },
        decisions={"y": DecisionHistory("y", "${inputs.go}", 2, 1, 0)},
    )
    # r1 is gone (5 kept); r2's decision was on another condition text, r3's not evaluable
    assert everything.runs == 5
    assert (everything.steps["x"].measured, everything.steps["x"].median_s) == (4, 2.5)
    assert everything.decisions == {"y": DecisionHistory("y", "${inputs.go}", 2, 1, 1)}
    assert (await store.workflow_history("another")).steps["x"].median_s == 7.0
    assert (await store.workflow_history("never-ran")).summary() is None


async def test_sqlite_history_outlives_pruned_runs_and_a_reopened_file(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with await SqliteRunStore.open(db) as store:
        engine, _, _ = timed_engine(store, {"fetch": 2.0})
        with anyio.fail_after(5):
            await engine.run(TRIAGE)
        assert await store.prune(older_than_s=0) == 1
        assert await store.list_runs() == []
    async with await SqliteRunStore.open(db) as store:
        got = await store.workflow_history("triage")
    assert (got.runs, got.durations()["fetch"]) == (1, 2.0)
