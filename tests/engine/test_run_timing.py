"""A run's timing across its execution segments: `wall_s` from its first start, `active_s`
summed over the segments (also one cut off by a killed process), and a speedup that the
gaps between segments do not dilute. Time is an injected clock: no sleeps."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.report import run_metrics
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

CHAIN: dict[str, Any] = {
    "name": "client-chain",
    "steps": [
        {"id": "ask", "run": "client", "prompt": "Summarise the tides in one line"},
        {"id": "shout", "args": "${ask.output | upper}!"},
    ],
}
TIMING = ("wall_s", "active_s", "segments")


class Clock:
    """Time stands still until the test moves it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def store() -> AsyncIterator[SqliteRunStore]:
    async with await SqliteRunStore.open(":memory:") as s:
        yield s


def new_engine(store: SqliteRunStore, clock: Clock) -> Engine:
    """An engine as a new process has it: nothing in memory, everything from the store."""
    return Engine(
        store,
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(clock=clock),
    )


async def test_a_client_run_finished_later_reports_its_wall_time_from_its_first_start(
    store: SqliteRunStore,
) -> None:
    clock = Clock(1000.0)
    with anyio.fail_after(5):
        first = await new_engine(store, clock).run(CHAIN)
        assert first.status is RunStatus.WAITING
        assert first.metrics is not None
        assert [first.metrics[k] for k in TIMING] == [0.0, 0.0, 1]
        clock.t = 1038.0  # the client answers 38 s later, from another process
        await new_engine(store, clock).complete_step(first.id, "ask", output="ebb and flow")
        clock.t = 1040.0
        done = await new_engine(store, clock).resume(first.id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.metrics is not None
    assert [done.metrics[k] for k in TIMING] == [40.0, 0.0, 2]
    stored = await store.load_run(first.id)
    assert stored.metrics == done.metrics


async def test_a_segment_cut_off_by_a_killed_process_counts_up_to_its_last_recorded_step(
    store: SqliteRunStore,
) -> None:
    clock = Clock(100.0)
    with anyio.fail_after(5):
        run_id = (await new_engine(store, clock).run(CHAIN)).id  # rests waiting at 100
        # A process resumes it at 200, records the client's answer at 230, and is killed:
        # its segment never comes to rest, so it writes no metrics.
        await store.set_run(
            run_id, status=RunStatus.RUNNING, started_at=200.0, owner=f"{socket.gethostname()}:x:"
        )
        clock.t = 230.0
        await new_engine(store, clock).complete_step(run_id, "ask", output="ebb and flow")
        clock.t = 300.0
        done = await new_engine(store, clock).resume(run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.metrics is not None
    assert [done.metrics[k] for k in TIMING] == [200.0, 30.0, 3]


async def test_a_resume_stores_the_cut_off_segment_before_it_runs_anything(
    store: SqliteRunStore,
) -> None:
    """So that a kill of the resumed execution too loses none of the earlier segments."""
    clock = Clock(100.0)
    spec = {**CHAIN, "steps": [*CHAIN["steps"], {"id": "ask2", "run": "client", "prompt": "?"}]}
    with anyio.fail_after(5):
        run_id = (await new_engine(store, clock).run(spec)).id  # segment 1 rests at 100
        dead = f"{socket.gethostname()}:x:"
        await store.set_run(run_id, status=RunStatus.RUNNING, started_at=200.0, owner=dead)
        clock.t = 210.0  # segment 2 records the answer at 210, then is killed
        await new_engine(store, clock).complete_step(run_id, "ask", output="ebb and flow")
        clock.t = 300.0
        engine = new_engine(store, clock)
        waiting = anyio.Event()

        def on_event(kind: str, sid: str | None, data: dict[str, Any]) -> None:
            if kind == "step_waiting":
                waiting.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.resume(run_id, attached=True, on_event=on_event))
            await waiting.wait()  # segment 3 executes: what a kill now would leave
            stored = await store.load_run(run_id)
            tg.cancel_scope.cancel()
    assert stored.metrics is not None
    assert [stored.metrics[k] for k in (*TIMING, "segment_started_at")] == [110.0, 10.0, 2, 200.0]


def test_the_speedup_leaves_out_the_time_between_segments() -> None:
    wf = compile_workflow(
        parse_spec(
            {
                "steps": [
                    {"id": "a", "args": "1"},
                    {"id": "b", "args": "2"},
                    {"id": "c", "args": "${a.output}${b.output}"},
                ]
            }
        )
    )
    times = {"a": (0.0, 10.0), "b": (0.0, 10.0), "c": (1000.0, 1010.0)}  # resumed 990 s later
    run = RunRecord(
        "r",
        "wf",
        RunStatus.SUCCEEDED,
        {},
        {},
        0.0,
        steps={
            sid: StepRecord(sid, StepStatus.SUCCEEDED, 1, "builtin", start, end)
            for sid, (start, end) in times.items()
        },
    )
    m = run_metrics(run, wf)
    assert (m["step_time_s"], m["busy_s"], m["span_s"], m["speedup"]) == (30.0, 20.0, 1010.0, 1.5)
