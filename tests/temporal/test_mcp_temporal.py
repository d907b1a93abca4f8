"""The MCP tools on the Temporal backend (TUTTI_BACKEND=temporal): a server whose runs are
Temporal workflows, executed by a worker in this process, read and steered through the same
tools as embedded runs. Each test has its own task queue on one dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from temporalio.client import Client as TemporalClient

from tests.engine.test_swarm import SEED
from tests.seed import SEED_CHAIN
from tests.server.mcp_support import (
    BUILTIN_CHAIN,
    ONE_CLIENT_STEP,
    call,
    connect,
    fail,
    settings,
    tasks_of,
)
from tests.server.tasks_support import TasksClaim, request, start_task_v2
from tests.server.test_mcp_swarm import do_turn
from tests.temporal.devserver import DevServer
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.shell import ShellExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.temporal.worker import new_worker
from tutti_mcp.server.settings import Settings, TemporalSettings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def on_temporal(devserver: DevServer) -> AsyncIterator[Settings]:
    """Settings for a server on Temporal, and a worker for its queue while the test runs."""
    queue = f"tutti-test-{uuid.uuid4().hex[:8]}"
    client = await TemporalClient.connect(devserver.address)
    worker = new_worker(
        client,
        queue,
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.SHELL: ShellExecutor({"sh"})},
        ModelTable(),
        workspace=None,
        max_concurrency=16,
        heartbeat_s=5,
    )
    async with worker:
        yield settings(
            backend="temporal",
            temporal=TemporalSettings(address=devserver.address, task_queue=queue),
        )


async def test_seed_chain_with_client_steps_runs_on_temporal(on_temporal: Settings) -> None:
    answers = {
        "analyze_codebase": "SQL injection in db.py line 12",
        "fix_issues": "parameterised the query in db.py",
        "validate_fixes": "bandit: no issues",
    }
    with anyio.fail_after(60):
        async with connect("auto", on_temporal) as c:
            run = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=20)
            rid = run["run_id"]
            tasks = tasks_of(run)
            seen = []
            while tasks:
                ((sid, task),) = tasks.items()
                seen.append(sid)
                if sid == "fix_issues":  # rendered in the workflow from the reported output
                    assert (
                        task["instructions"]
                        == f"fix security issues: {answers['analyze_codebase']}"
                    )
                run = await call(c, "step_complete", run_id=rid, step_id=sid, output=answers[sid])
                tasks = tasks_of(run)
            assert seen == list(answers)
            assert run["status"] == "succeeded"
            result = await call(c, "workflow_result", run_id=rid)
            listed = await call(c, "workflow_list")
    assert result["outputs"] == answers
    assert rid in {r["run_id"] for r in listed["runs"]}


async def test_builtin_chain_runs_on_a_worker_and_reads_back(on_temporal: Settings) -> None:
    with anyio.fail_after(60):
        async with connect("legacy", on_temporal) as c:
            run = await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=20)
            assert run["status"] == "succeeded", run
            cps = await call(c, "checkpoint_list", run_id=run["run_id"])
    assert [cp["step_id"] for cp in cps["checkpoints"]] == ["a", "b", "c"]


async def test_step_complete_for_a_step_not_waiting_says_so(on_temporal: Settings) -> None:
    with anyio.fail_after(60):
        async with connect("auto", on_temporal) as c:
            run = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=20)
            rid = run["run_id"]
            text = await fail(c, "step_complete", run_id=rid, step_id="validate_fixes", output="x")
            assert "validate_fixes" in text and "waiting" in text
            cancelled = await call(c, "workflow_cancel", run_id=rid)
    assert cancelled["status"] == "cancelled"


async def test_a_pipeline_spec_is_refused_before_it_is_submitted(on_temporal: Settings) -> None:
    spec = {
        "name": "p",
        "steps": [
            {
                "id": "p",
                "pipeline": {
                    "source": {"items": [1, 2]},
                    "stages": [{"id": "s", "value": "${item}"}],
                },
            }
        ],
    }
    with anyio.fail_after(60):
        async with connect("auto", on_temporal) as c:
            text = await fail(c, "workflow_start", spec=spec)
    assert "pipeline steps run on the embedded backend only" in text


# a foreach whose instances commit, then a shell step that fails until a file exists
FLAKY = {
    "name": "flaky",
    "inputs": {"who": {"default": "x"}},
    "steps": [
        {"id": "names", "value": ["a", "b", "c"]},
        {"id": "greet", "foreach": "${names.output}", "args": "hi ${item} ${inputs.who}"},
        {
            "id": "check",
            "depends_on": ["greet"],
            "argv": ["sh", "-c", "test -f ready && echo ready"],
        },
        {"id": "done", "args": "${check.output} after ${greet.output | length}"},
    ],
}


def _finished(result: dict[str, Any]) -> dict[str, Any]:
    return {sid: s.get("finished_at") for sid, s in result["steps"].items()}


async def test_resume_of_a_failed_run_keeps_what_it_committed(
    on_temporal: Settings, tmp_path: Path
) -> None:
    """A closed run that failed runs again under its id, from every step it committed
    (the foreach's instances too): only the failed step and what follows it run."""
    with anyio.fail_after(90):
        async with connect("auto", on_temporal, workspace=tmp_path) as c:
            run = await call(c, "workflow_start", spec=FLAKY, wait_s=30)
            rid = run["run_id"]
            assert run["status"] == "failed", run
            before = await call(c, "workflow_result", run_id=rid)
            (tmp_path / "ready").write_text("")
            resumed = await call(c, "workflow_resume", run_id=rid, wait_s=30)
            assert resumed["status"] == "succeeded", resumed
            after = await call(c, "workflow_result", run_id=rid)
    kept = ["names", "greet[0]", "greet[1]", "greet[2]"]
    assert all(before["steps"][sid]["status"] == "succeeded" for sid in kept), before["steps"]
    assert {sid: after["steps"][sid]["seconds"] for sid in kept} == {
        sid: before["steps"][sid]["seconds"] for sid in kept
    }
    assert after["outputs"]["done"].startswith("ready")


async def test_fork_with_new_inputs_keeps_the_steps_that_do_not_read_them(
    on_temporal: Settings, tmp_path: Path
) -> None:
    (tmp_path / "ready").write_text("")
    with anyio.fail_after(90):
        async with connect("auto", on_temporal, workspace=tmp_path) as c:
            run = await call(c, "workflow_start", spec=FLAKY, wait_s=30)
            assert run["status"] == "succeeded", run
            forked = await call(
                c, "workflow_resume", run_id=run["run_id"], inputs={"who": "y"}, wait_s=30
            )
            assert forked["status"] == "succeeded", forked
            result = await call(c, "workflow_result", run_id=forked["run_id"])
    assert forked["run_id"] != run["run_id"]
    assert forked["forked_from"] == run["run_id"]
    assert "names" in forked["kept"] and "greet" not in forked["kept"]
    assert result["outputs"]["done"] == "ready after 3"


async def test_a_temporal_run_as_an_mcp_task_is_answered_through_tasks_update(
    on_temporal: Settings,
) -> None:
    """2026-07-28 tasks on a Temporal run: the client step shows in inputRequests,
    tasks/update answers it (an update to the workflow), the task completes with the
    run's result."""
    with anyio.fail_after(60):
        async with connect("auto", on_temporal, extensions=[TasksClaim()]) as c:
            created = await start_task_v2(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            rid = created.meta and created.meta["tutti/runId"]
            await call(c, "workflow_status", run_id=rid, wait_s=20)
            waiting = await request(c, "tasks/get", taskId=created.task_id)
            ((key, _ask),) = waiting["inputRequests"].items()
            await request(
                c,
                "tasks/update",
                taskId=created.task_id,
                inputResponses={key: {"action": "accept", "content": {"output": "7"}}},
            )
            await call(c, "workflow_status", run_id=rid, wait_s=20)
            done = await request(c, "tasks/get", taskId=created.task_id)
    assert waiting["status"] == "input_required"
    assert done["status"] == "completed", done
    assert done["result"]["structuredContent"]["outputs"] == {"ask": "7"}


async def test_the_seeds_swarm_runs_on_temporal_with_the_client_doing_every_turn(
    on_temporal: Settings,
) -> None:
    """A swarm's turns are steps added as it goes: on Temporal, handed to the caller from
    the workflow and answered by updates, the coordinator's plan driving the rest."""
    done: list[str] = []
    with anyio.fail_after(90):
        async with connect("legacy", on_temporal) as c:
            run = await call(
                c, "workflow_start", spec=SEED, inputs={"task": "Review the web app"}, wait_s=20
            )
            run_id = run["run_id"]
            for _ in range(8):
                tasks = tasks_of(run)
                if not tasks:
                    break
                for sid, task in tasks.items():
                    run = await call(
                        c, "step_complete", run_id=run_id, step_id=sid, output=do_turn(sid, task)
                    )
                    done.append(sid)
                if run["status"] == "running":
                    run = await call(c, "workflow_status", run_id=run_id, wait_s=20)
            result = await call(c, "workflow_result", run_id=run_id)
    assert run["status"] == "succeeded", run
    assert done[0] == "swarm[coordinator:plan]" and done[-1] == "swarm[coordinator:synthesis]"
    assert result["outputs"]["swarm"]["result"] == "ship it after fixing the login flow"
