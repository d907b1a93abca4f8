"""Client steps: a model step handed back to the caller, completed with `complete_step`,
whether the run is detached (resume afterwards), attached in this process, or attached
while another process completes the step through the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import StepNotWaiting, StepOutputRejected, UnknownStep
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

CHAIN: dict[str, Any] = {
    "name": "client-chain",
    "inputs": {"topic": {"default": "tides"}},
    "steps": [
        {"id": "ask", "prompt": "Summarise ${inputs.topic} in one line", "system": "Be brief."},
        {"id": "shout", "args": "${ask.output | upper}!"},
    ],
}


def chain(**ask: Any) -> dict[str, Any]:
    """CHAIN with extra fields on the client step (output shape, failure policy)."""
    steps = [{**CHAIN["steps"][0], **ask}, CHAIN["steps"][1]]
    return {**CHAIN, "steps": steps}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteRunStore]:
    async with await SqliteRunStore.open(tmp_path / "runs.db") as s:
        yield s


def client_engine(store: SqliteRunStore, tmp_path: Path, *, poll_s: float = 60.0) -> Engine:
    # A long poll interval by default: in-process completion must not depend on polling.
    return Engine(
        store,
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(model_executor=ExecutorKind.CLIENT, client_poll_s=poll_s, workspace=tmp_path),
    )


@pytest.fixture
def engine(store: SqliteRunStore, tmp_path: Path) -> Engine:
    return client_engine(store, tmp_path)


Respond = Callable[[str, dict[str, Any]], Awaitable[None]]


async def run_attached(
    engine: Engine, run_id: str, respond: Respond, timeout: float = 5
) -> tuple[RunRecord, list[tuple[str, str | None]]]:
    """Execute attached; each time a step waits for the client, call `respond(step, request)`.
    Returns the final record and the (kind, step) events seen."""
    send, receive = anyio.create_memory_object_stream[tuple[str, dict[str, Any]]](100)
    events: list[tuple[str, str | None]] = []
    result: list[RunRecord] = []

    def on_event(kind: str, sid: str | None, data: dict[str, Any]) -> None:
        events.append((kind, sid))
        if kind == "step_waiting":
            assert sid is not None
            send.send_nowait((sid, data["request"]))

    async def execute() -> None:
        async with send:
            result.append(await engine.execute(run_id, attached=True, on_event=on_event))

    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            async with receive:
                async for sid, request in receive:
                    await respond(sid, request)
    return result[0], events


# -- detached ------------------------------------------------------------------------------


async def test_a_detached_run_waits_for_the_client_step_and_resumes_with_its_output(
    engine: Engine,
) -> None:
    with anyio.fail_after(5):
        run = await engine.run(CHAIN)
    assert run.status is RunStatus.WAITING
    assert {s: r.status for s, r in run.steps.items()} == {
        "ask": StepStatus.WAITING,
        "shout": StepStatus.PENDING,
    }
    request = run.steps["ask"].request
    assert request["step_id"] == "ask"
    assert request["instructions"] == "Summarise tides in one line"
    assert "Be brief." in (request["system"] or "")
    assert request["idempotency_key"] == f"{run.id}:ask"
    assert request["output"] == "text"

    with anyio.fail_after(5):
        assert (
            await engine.complete_step(run.id, "ask", output="the sea rises and falls")
            is RunStatus.WAITING
        )
        done = await engine.resume(run.id)

    assert done.status is RunStatus.SUCCEEDED
    assert done.steps["ask"].output == "the sea rises and falls"
    assert done.steps["shout"].output == "THE SEA RISES AND FALLS!"


# -- attached, in this process -------------------------------------------------------------


async def test_an_attached_run_continues_as_soon_as_the_client_step_is_completed_in_process(
    engine: Engine,
) -> None:
    run_id = await engine.create_run(CHAIN, {"topic": "moons"})
    requests: list[dict[str, Any]] = []

    async def respond(sid: str, request: dict[str, Any]) -> None:
        requests.append(request)
        assert await engine.complete_step(run_id, sid, output="a moon pulls") is RunStatus.RUNNING

    run, events = await run_attached(engine, run_id, respond)

    assert run.status is RunStatus.SUCCEEDED
    assert [r["instructions"] for r in requests] == ["Summarise moons in one line"]
    assert run.steps["shout"].output == "A MOON PULLS!"
    assert ("step_waiting", "ask") in events
    assert events.index(("step_waiting", "ask")) < events.index(("step_succeeded", "shout"))


# -- attached, completed from another process ----------------------------------------------


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TUTTI_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


async def _complete_from_cli(db: Path, run_id: str, step: str, *flags: str) -> None:
    with anyio.fail_after(60):
        await anyio.run_process(
            [sys.executable, "-m", "tutti_mcp", "--db", str(db), "complete", run_id, step, *flags],
            cwd=ROOT,
            env=_cli_env(),
        )


async def test_an_attached_run_picks_up_a_completion_made_by_another_process(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = client_engine(store, tmp_path, poll_s=0.05)
    run_id = await engine.create_run(CHAIN)

    async def respond(sid: str, request: dict[str, Any]) -> None:
        await _complete_from_cli(Path(store.path), run_id, sid, "--output", "from another process")

    run, events = await run_attached(engine, run_id, respond, timeout=90)

    assert run.status is RunStatus.SUCCEEDED
    assert run.steps["ask"].output == "from another process"
    assert run.steps["shout"].output == "FROM ANOTHER PROCESS!"
    assert ("step_succeeded", "ask") in events


async def test_an_error_reported_by_another_process_applies_the_degrade_policy(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = client_engine(store, tmp_path, poll_s=0.05)
    run_id = await engine.create_run(chain(on_failure="degrade", default="unknown"))

    async def respond(sid: str, request: dict[str, Any]) -> None:
        await _complete_from_cli(Path(store.path), run_id, sid, "--error", "no network here")

    run, _ = await run_attached(engine, run_id, respond, timeout=90)

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.steps["ask"].status is StepStatus.DEGRADED
    assert run.steps["shout"].output == "UNKNOWN!"


# -- errors --------------------------------------------------------------------------------


async def test_completing_a_step_that_is_not_waiting_is_refused_with_its_status(
    engine: Engine,
) -> None:
    with anyio.fail_after(5):
        run = await engine.run(CHAIN)

        with pytest.raises(
            StepNotWaiting, match=r"step 'shout' of run \S+ is pending, not waiting for the client"
        ):
            await engine.complete_step(run.id, "shout", output="too early")
        with pytest.raises(UnknownStep, match="has no step 'nope'"):
            await engine.complete_step(run.id, "nope", output="x")

        await engine.complete_step(run.id, "ask", output="first")
        with pytest.raises(
            StepNotWaiting, match=r"step 'ask' of run \S+ is succeeded, not waiting for the client"
        ):
            await engine.complete_step(run.id, "ask", output="second")

        done = await engine.resume(run.id)
    assert done.steps["shout"].output == "FIRST!"


async def test_completing_a_step_that_is_not_waiting_is_refused_by_the_running_process(
    engine: Engine,
) -> None:
    run_id = await engine.create_run(CHAIN)

    async def respond(sid: str, request: dict[str, Any]) -> None:
        with pytest.raises(
            StepNotWaiting, match=r"step 'shout' of run \S+ is pending, not waiting for the client"
        ):
            await engine.complete_step(run_id, "shout", output="too early")
        await engine.complete_step(run_id, sid, output="ok")

    run, _ = await run_attached(engine, run_id, respond)
    assert run.steps["shout"].output == "OK!"


async def test_a_json_step_refuses_output_that_is_not_json_and_keeps_waiting(
    engine: Engine,
) -> None:
    spec = chain(output="json")
    spec["steps"][1] = {"id": "shout", "args": "${ask.output.answer}"}
    with anyio.fail_after(5):
        run = await engine.run(spec)
        with pytest.raises(StepOutputRejected, match="step 'ask': output is not valid JSON"):
            await engine.complete_step(run.id, "ask", output="the answer is 42")
        assert (await engine.load(run.id)).steps["ask"].status is StepStatus.WAITING

        await engine.complete_step(run.id, "ask", output='Here:\n```json\n{"answer": 42}\n```')
        done = await engine.resume(run.id)
    assert done.steps["ask"].output == {"answer": 42}
    assert done.steps["shout"].output == "42"


async def test_a_json_step_refuses_output_that_is_not_json_in_the_running_process(
    engine: Engine,
) -> None:
    spec = chain(output="json")
    spec["steps"][1] = {"id": "shout", "args": "${ask.output.answer}"}
    run_id = await engine.create_run(spec)

    async def respond(sid: str, request: dict[str, Any]) -> None:
        assert request["output"] == "json"
        with pytest.raises(StepOutputRejected, match="step 'ask': output is not valid JSON"):
            await engine.complete_step(run_id, sid, output="{not json")
        await engine.complete_step(run_id, sid, output='{"answer": "yes"}')

    run, _ = await run_attached(engine, run_id, respond)
    assert run.status is RunStatus.SUCCEEDED
    assert run.steps["shout"].output == "yes"


async def test_a_client_error_fails_the_run_when_the_step_policy_is_fail(engine: Engine) -> None:
    run_id = await engine.create_run(CHAIN)

    async def respond(sid: str, request: dict[str, Any]) -> None:
        await engine.complete_step(run_id, sid, error="the tool is broken")

    run, _ = await run_attached(engine, run_id, respond)

    assert run.status is RunStatus.FAILED
    ask = run.steps["ask"]
    assert (ask.status, ask.error) == (StepStatus.FAILED, "the client reported: the tool is broken")
    assert run.steps["shout"].status is StepStatus.PENDING


async def test_a_client_error_skips_the_dependents_of_an_optional_step(engine: Engine) -> None:
    run_id = await engine.create_run(chain(on_failure="continue"))

    async def respond(sid: str, request: dict[str, Any]) -> None:
        await engine.complete_step(run_id, sid, error="cannot reach the docs")

    run, _ = await run_attached(engine, run_id, respond)

    assert run.status is RunStatus.SUCCEEDED
    assert run.steps["ask"].status is StepStatus.FAILED
    assert run.steps["shout"].status is StepStatus.SKIPPED


async def test_a_client_error_uses_the_default_of_a_degrading_step(engine: Engine) -> None:
    run_id = await engine.create_run(chain(on_failure="degrade", default="unknown"))

    async def respond(sid: str, request: dict[str, Any]) -> None:
        await engine.complete_step(run_id, sid, error="cannot reach the docs")

    run, _ = await run_attached(engine, run_id, respond)

    assert run.status is RunStatus.SUCCEEDED
    assert (run.steps["ask"].status, run.steps["ask"].output) == (StepStatus.DEGRADED, "unknown")
    assert run.steps["shout"].output == "UNKNOWN!"


async def test_a_client_error_on_a_detached_run_applies_the_step_policy_on_resume(
    engine: Engine,
) -> None:
    with anyio.fail_after(5):
        run = await engine.run(chain(on_failure="continue"))
        await engine.complete_step(run.id, "ask", error="cannot reach the docs")
        assert (await engine.load(run.id)).steps["ask"].status is StepStatus.FAILED
        done = await engine.resume(run.id)

    # the client said the step failed: resume must not hand the same step out again
    assert done.status is RunStatus.SUCCEEDED
    assert done.steps["ask"].status is StepStatus.FAILED
    assert done.steps["shout"].status is StepStatus.SKIPPED


@pytest.mark.anyio
async def test_a_client_step_is_timed_from_its_handoff_to_its_completion() -> None:
    now = [100.0]
    engine = Engine(
        InMemoryRunStore(),
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(model_executor=ExecutorKind.CLIENT, clock=lambda: now[0]),
    )
    waiting = anyio.Event()

    def on_event(kind: str, sid: str | None, data: dict[str, Any]) -> None:
        if kind == "step_waiting":
            waiting.set()

    run_id = await engine.create_run({"steps": [{"id": "ask", "prompt": "say hi"}]})
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.execute(run_id, attached=True, on_event=on_event))
            await waiting.wait()
            now[0] = 130.0  # the client takes 30 s
            await engine.complete_step(run_id, "ask", output="hi")
    run = await engine.load(run_id)
    step = run.steps["ask"]
    assert (run.status.value, step.attempts, step.duration_s) == ("succeeded", 1, 30.0)


async def test_a_long_chain_of_client_steps_completed_in_process_never_rests_early(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    """Regression: while `complete_step` committed a step, the store poller could see no
    step waiting and nothing ready, take the run for resting and close its task group;
    the completion then failed to start the next step. A poll interval of ~0 makes the
    poller run at every chance."""
    n = 40
    spec = {
        "name": "long-client-chain",
        "steps": [
            {"id": f"s{i}", "prompt": f"step {i}", **({"depends_on": [f"s{i - 1}"]} if i else {})}
            for i in range(n)
        ],
    }
    engine = client_engine(store, tmp_path, poll_s=0.0001)
    run_id = await engine.create_run(spec)
    result: list[RunRecord] = []
    handed, handoffs = anyio.create_memory_object_stream[str](n)

    def on_event(kind: str, sid: str | None, data: dict[str, Any]) -> None:
        if kind == "step_waiting" and sid is not None:
            handed.send_nowait(sid)

    async def execute() -> None:
        result.append(await engine.execute(run_id, attached=True, on_event=on_event))

    with anyio.fail_after(20), handed, handoffs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            for i in range(n):
                sid = await handoffs.receive()
                assert sid == f"s{i}"
                await engine.complete_step(run_id, sid, output=f"out{i}")
    assert result[0].status is RunStatus.SUCCEEDED
    assert [result[0].steps[f"s{i}"].output for i in range(n)] == [f"out{i}" for i in range(n)]


async def test_a_client_failure_reported_while_no_process_ran_is_not_handed_off_again(
    engine: Engine,
) -> None:
    spec = chain(on_failure="continue", depends_on=["start"])
    spec["steps"].insert(0, {"id": "start", "args": "go"})  # committed before `ask` waits
    with anyio.fail_after(5):
        run = await engine.run(spec)
        await engine.complete_step(run.id, "ask", error="no network here")
        done = await engine.resume(run.id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.steps["ask"].status is StepStatus.FAILED  # its policy applied, not asked again
    assert done.steps["ask"].attempts == 1
    assert done.steps["shout"].status is StepStatus.SKIPPED
