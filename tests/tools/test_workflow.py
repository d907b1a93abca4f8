"""The workflow tools as plain functions (tools/workflow.py), called with a ToolState built
the way the server's lifespan builds it, over the in-memory run store: no MCP, no client.
What MCP adds (schemas, error wrapping, progress notifications) is tested in tests/server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.errors import (
    ClientCannotSample,
    StepResultConflict,
    StepResultMissing,
    UnknownRunStatus,
)
from tutti_mcp.engine.supervisor import RunSupervisor
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus
from tutti_mcp.server.settings import Settings, build_engine
from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.results import ClientTask
from tutti_mcp.tools.sampling import SamplingBroker

pytestmark = pytest.mark.anyio

WAIT_S = 10.0  # what a tool call may wait for its run; each test is bounded above that

CHAIN: dict[str, Any] = {
    "name": "chain",
    "steps": [
        {"id": "a", "op": "template", "args": "hello"},
        {"id": "b", "depends_on": ["a"], "op": "template", "args": "${a.output} world"},
    ],
}

# a client step, then a builtin step that uses its answer
ASK_THEN_USE: dict[str, Any] = {
    "name": "ask-then-use",
    "steps": [
        {"id": "ask", "prompt": "Name one prime.", "run": "client"},
        {"id": "use", "depends_on": ["ask"], "op": "template", "args": "prime: ${ask.output}"},
    ],
}


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[wfl.ToolState]:
    engine = build_engine(
        Settings(db_path=Path(":memory:")), InMemoryRunStore(), workspace=tmp_path
    )
    broker = SamplingBroker()
    async with anyio.create_task_group() as tg:
        supervisor = RunSupervisor(engine, tg, on_stopped=broker.forget)
        broker.on_parked = supervisor.notify
        yield wfl.ToolState(supervisor, broker, tmp_path)
        tg.cancel_scope.cancel()


async def test_start_runs_a_builtin_chain_to_its_outputs_and_says_what_to_call_next(
    state: wfl.ToolState,
) -> None:
    with anyio.fail_after(WAIT_S + 5):
        run = await wfl.start(state, CHAIN, None, WAIT_S, can_sample=False)
        result = await wfl.result(state, run.run_id)
        cps = await wfl.checkpoints(state, run.run_id)
        listed = await wfl.list_runs(state, "succeeded", 10)
    assert (run.status, run.done, run.total) == ("succeeded", 2, 2)
    assert run.outputs == {"a": "hello", "b": "hello world"}
    assert run.client_tasks == [] and run.error is None
    assert (
        run.next == f"Done. Call workflow_result('{run.run_id}') for every output and the metrics."
    )
    assert result.outputs == run.outputs and result.recovery is None
    assert [(c.step_id, c.seq, c.status) for c in cps.checkpoints] == [
        ("a", 1, "succeeded"),
        ("b", 2, "succeeded"),
    ]
    assert [(r.run_id, r.name, r.status) for r in listed.runs] == [
        (run.run_id, "chain", "succeeded")
    ]


async def test_a_client_step_is_handed_out_and_its_completion_carries_the_run_on(
    state: wfl.ToolState,
) -> None:
    with anyio.fail_after(WAIT_S + 5):
        run = await wfl.start(state, ASK_THEN_USE, None, WAIT_S, can_sample=False)
        assert [t.step_id for t in run.client_tasks] == ["ask"]
        assert run.client_tasks[0].instructions == "Name one prime."
        assert f"step_complete('{run.run_id}', step_id, output=...)" in run.next
        done = await wfl.complete(state, run.run_id, "ask", "7", None)
    assert (done.status, done.outputs) == ("succeeded", {"ask": "7", "use": "prime: 7"})


@pytest.mark.parametrize(
    ("output", "error", "says"),
    [("7", "could not", "not both"), (None, None, "give output=... with the result of step 'ask'")],
    ids=["both", "neither"],
)
async def test_completing_a_step_needs_exactly_one_of_output_and_error(
    state: wfl.ToolState, output: str | None, error: str | None, says: str
) -> None:
    with anyio.fail_after(WAIT_S + 5):
        run = await wfl.start(state, ASK_THEN_USE, None, WAIT_S, can_sample=False)
        with pytest.raises((StepResultConflict, StepResultMissing), match=says):
            await wfl.complete(state, run.run_id, "ask", output, error)
        after = await wfl.status(state, run.run_id, 0)
    assert after.steps == {"ask": "waiting", "use": "pending"}


async def test_a_client_step_reported_failed_fails_the_run_with_the_clients_reason(
    state: wfl.ToolState,
) -> None:
    with anyio.fail_after(WAIT_S + 5):
        run = await wfl.start(state, ASK_THEN_USE, None, WAIT_S, can_sample=False)
        done = await wfl.complete(state, run.run_id, "ask", None, "no primes today")
    assert done.status == "failed"
    assert done.errors["ask"] == "the client reported: no primes today"
    assert f"workflow_resume('{run.run_id}')" in done.next


async def test_a_sampling_step_is_refused_before_a_run_is_created_when_the_client_cannot_sample(
    state: wfl.ToolState,
) -> None:
    spec = {"name": "draw", "steps": [{"id": "pic", "prompt": "Draw an owl.", "run": "sampling"}]}
    with (
        anyio.fail_after(5),
        pytest.raises(ClientCannotSample, match="steps pic run on `sampling`"),
    ):
        await wfl.start(state, spec, None, WAIT_S, can_sample=False)
    assert (await wfl.list_runs(state, None, 10)).runs == []


async def test_listing_runs_by_an_unknown_status_names_the_known_ones(
    state: wfl.ToolState,
) -> None:
    with pytest.raises(
        UnknownRunStatus, match="unknown status 'done'; use one of: pending, running"
    ):
        await wfl.list_runs(state, "done", 10)


def _run_of_every_step_status(status: RunStatus) -> RunRecord:
    """A run with one step in each status, a long output, and errors kept by failed and
    degraded steps."""
    long = {"rows": list(range(400))}  # over PREVIEW_CHARS once dumped
    steps = [
        StepRecord("pending"),
        StepRecord("running", StepStatus.RUNNING),
        StepRecord("asked", StepStatus.WAITING, detail={"instructions": "Do it.", "inputs": {}}),
        StepRecord(
            "asked_json",
            StepStatus.WAITING,
            detail={
                "instructions": "Count.",
                "system": "Be brief.",
                "inputs": {"ok": "yes"},
                "thinking": "standard",
                "output": "json",
            },
        ),
        StepRecord("ok", StepStatus.SUCCEEDED, output="yes"),
        StepRecord("big", StepStatus.SUCCEEDED, output=long),
        StepRecord("fell_back", StepStatus.DEGRADED, output=0, error="boom, default used"),
        StepRecord("broke", StepStatus.FAILED, error="boom"),
        StepRecord("skipped", StepStatus.SKIPPED, detail={"reason": "condition is false"}),
        StepRecord("stopped", StepStatus.CANCELLED),
        StepRecord("cut", StepStatus.INTERRUPTED),
    ]
    return RunRecord(
        id="run_x",
        name="every",
        status=status,
        spec={},
        inputs={},
        created_at=0.0,
        error="boom" if status is RunStatus.FAILED else None,
        steps={s.step_id: s for s in steps},
    )


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.FAILED])
async def test_the_run_state_answer_reads_every_step_status_outputs_errors_and_open_client_tasks(
    state: wfl.ToolState, status: RunStatus
) -> None:
    run = _run_of_every_step_status(status)
    answer = wfl.run_state(state, run)
    big = json.dumps(run.steps["big"].output)
    tasks = [
        ClientTask(step_id="asked", instructions="Do it."),
        ClientTask(
            step_id="asked_json",
            instructions="Count.",
            system="Be brief.",
            inputs={"ok": "yes"},
            thinking="standard",
            output="json",
        ),
    ]
    assert answer.model_dump() == {
        "run_id": "run_x",
        "status": status.value,
        "done": 5,
        "total": 11,
        "steps": {sid: s.status.value for sid, s in run.steps.items()},
        "outputs": {
            "ok": "yes",
            "big": big[:600] + f"... ({len(big)} chars; workflow_result has all of it)",
            "fell_back": 0,
        },
        "errors": {"fell_back": "boom, default used", "broke": "boom"},
        # a failed run takes no results until it is resumed: it hands out no tasks
        "client_tasks": [t.model_dump() for t in tasks] if status is RunStatus.RUNNING else [],
        "added": {},  # nothing was added at run time
        "pipelines": {},  # it has no pipeline step
        "error": run.error,
        "next": wfl.next_step(run, tasks if status is RunStatus.RUNNING else [], 0, run.error),
    }


async def test_a_fan_out_is_counted_under_its_step_and_its_waiting_instances_are_tasks(
    state: wfl.ToolState,
) -> None:
    spec = {
        "name": "fan",
        "steps": [
            {"id": "each", "foreach": list(range(30)), "args": "n${item}"},
            {"id": "ask", "foreach": ["x", "y"], "run": "client", "prompt": "Say ${item}"},
        ],
    }
    with anyio.fail_after(WAIT_S + 5):
        run = await wfl.start(state, spec, None, WAIT_S, can_sample=False)
        assert run.added == {"each": {"succeeded": 30}, "ask": {"waiting": 2}}
        # instances are listed only until they succeed; their outputs are their step's
        assert run.steps == {
            "each": "succeeded",
            "ask": "running",
            "ask[0]": "waiting",
            "ask[1]": "waiting",
        }
        assert run.outputs["each"] == [f"n{i}" for i in range(30)]
        assert not [k for k in run.outputs if "[" in k]
        assert [t.step_id for t in run.client_tasks] == ["ask[0]", "ask[1]"]
        await wfl.complete(state, run.run_id, "ask[0]", "X", None)
        done = await wfl.complete(state, run.run_id, "ask[1]", "Y", None)
    assert (done.status, done.outputs["ask"], done.added["ask"]) == (
        "succeeded",
        ["X", "Y"],
        {"succeeded": 2},
    )
