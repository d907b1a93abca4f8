"""A run longer than one Temporal history allows goes on in new executions of the same
workflow (continue-as-new), as a resume would: every committed step is kept, none runs
twice, and the run ends as it would have in one execution."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.temporal.devserver import DevServer
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.temporal.client import RunView, TemporalRuns
from tutti_mcp.engine.temporal.codec import from_wire
from tutti_mcp.engine.temporal.worker import new_worker
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.server.cli_temporal import follow

pytestmark = pytest.mark.anyio


class Counting(BuiltinExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.runs: Counter[str] = Counter()

    async def execute(self, call: StepCall) -> StepOutcome:
        self.runs[call.step.id] += 1
        return await super().execute(call)


async def rolling(
    devserver: DevServer, counting: Counting, workspace: Path, *, roll_at_events: int
) -> tuple[Worker, TemporalRuns, Engine]:
    """A worker on a queue of its own that rolls runs over after `roll_at_events`."""
    queue = f"roll-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(devserver.address)
    worker = new_worker(
        client,
        queue,
        {ExecutorKind.BUILTIN: counting},
        ModelTable(),
        workspace=None,
        max_concurrency=4,
        heartbeat_s=5,
        roll_at_events=roll_at_events,
    )
    submitter = Engine(InMemoryRunStore(), {}, EngineConfig(workspace=workspace))
    return worker, TemporalRuns(client, queue), submitter


LONG = {
    "name": "long",
    "steps": [
        {"id": "s0", "value": 0},
        *[{"id": f"s{i}", "value": f"${{s{i - 1}.output + 1}}"} for i in range(1, 12)],
        {"id": "items", "value": list(range(8))},
        {"id": "each", "foreach": "${items.output}", "value": "${item * 10}"},
        {"id": "end", "args": "${s11.output} ${each.output | sum}"},
    ],
}


async def test_a_long_run_rolls_over_into_new_executions_and_runs_each_step_once(
    devserver: DevServer, tmp_path: Path
) -> None:
    counting = Counting()
    worker, runs, submitter = await rolling(devserver, counting, tmp_path, roll_at_events=40)
    with anyio.fail_after(90):
        async with worker:
            run_id = await runs.start(submitter, LONG, {}, str(tmp_path))
            final = from_wire(await runs.handle(run_id).result())
            record = await runs.record(run_id)
    assert record.status.value == "succeeded", record.error
    assert record.steps["end"].output == "11 280"
    assert all(n == 1 for n in counting.runs.values()), counting.runs
    assert len(counting.runs) == 12 + 1 + 8 + 1  # s0..s11, items, 8 instances, end
    assert final["rolls"] >= 2  # it did go on in new executions


async def test_a_client_step_waiting_when_the_run_rolls_over_is_asked_again_and_answered(
    devserver: DevServer, tmp_path: Path
) -> None:
    counting = Counting()
    worker, runs, submitter = await rolling(devserver, counting, tmp_path, roll_at_events=30)
    spec = {
        "name": "asks",
        "steps": [
            *LONG["steps"][:12],  # s0..s11
            # handed to the caller early, waiting while the chain rolls the run over: each
            # roll hands it over again in the new execution
            {"id": "ask", "run": "client", "prompt": "name a number", "depends_on": ["s0"]},
            {"id": "end", "args": "${s11.output} ${ask.output}"},
        ],
    }
    with anyio.fail_after(90):
        async with worker:
            run_id = await runs.start(submitter, spec, {}, str(tmp_path))
            while not (view := await runs.view(run_id)).blocked_on_client or (
                view.record.steps["s11"].status.value != "succeeded"
            ):
                await anyio.sleep(0.05)  # polling the run's state, as a client does
            await runs.complete(run_id, "ask", "7", None)
            final = from_wire(await runs.handle(run_id).result())
    assert final["status"] == "succeeded", final.get("error")
    assert final["steps"]["end"]["output"] == "11 7"
    assert all(n == 1 for n in counting.runs.values()), counting.runs
    assert final["rolls"] >= 1 and view.record.steps["ask"].status.value == "waiting"
    assert view.rolls >= 1  # an open run's query says how many executions came before


async def test_following_a_run_reads_a_new_executions_events_from_its_start() -> None:
    """Event numbers start at 1 again in each execution of a rolled-over run."""
    record = RunRecord("r", "n", RunStatus.RUNNING, {}, {}, 0.0)
    views = iter(
        [
            RunView(record, False, True, 0),
            RunView(record, False, True, 1),
            RunView(record, False, False, 1),
        ]
    )
    events: dict[int, list[dict[str, Any]]] = {
        0: [{"seq": 7, "kind": "step_succeeded", "step_id": "a", "data": None}],
        1: [{"seq": 1, "kind": "step_succeeded", "step_id": "b", "data": None}],
    }
    asked: list[int] = []
    shown: list[str | None] = []

    class Runs:
        current = 0

        async def view(self, run_id: str) -> RunView:
            v = next(views)
            self.current = v.rolls
            return v

        async def events(self, run_id: str, after: int) -> list[dict[str, Any]]:
            asked.append(after)
            return [e for e in events[self.current] if e["seq"] > after]

    class Progress:
        def on_event(self, kind: Any, step_id: str | None, data: Any) -> None:
            shown.append(step_id)

    with anyio.fail_after(10):
        await follow(Runs(), "r", Progress())  # type: ignore[arg-type]
    assert asked == [0, 0] and shown == ["a", "b"]
