"""MCP tasks backed by durable runs, through in-process clients of both protocol
generations: 2025-11-25 core tasks (raw JSON-RPC, as the SDK's client cannot receive a
CreateTaskResult) and the 2026-07-28 `io.modelcontextprotocol/tasks` extension (the SDK's
client extension interface). Every wait is bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from tests.server.mcp_support import BUILTIN_CHAIN, ONE_CLIENT_STEP, call, connect
from tests.server.tasks_support import (
    TasksClaim,
    raw,
    request,
    start_task_v1,
    start_task_v2,
)
from tutti_mcp.server import tasks_ext
from tutti_mcp.server.settings import Settings

pytestmark = pytest.mark.anyio

RUN_ID = "tutti/runId"
GATE: dict[str, Any] = {
    "name": "gated",
    "steps": [
        {"id": "plan", "op": "template", "args": "two edits"},
        {"id": "confirm", "depends_on": ["plan"], "approve": "Apply ${plan.output}?"},
        {"id": "apply", "depends_on": ["confirm"], "op": "template", "args": "applied"},
    ],
}
FAILING: dict[str, Any] = {
    "name": "failing",
    "steps": [{"id": "j", "op": "parse_json", "args": "{not json"}],  # fails, not retryable
}


# -- 2025-11-25 ------------------------------------------------------------------------------
async def test_a_legacy_client_is_offered_tasks_on_the_tools_that_start_or_continue_work() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            caps = c.session.server_capabilities
            tools = await raw(c, "tools/list", {})
    assert caps is not None and caps.tasks is not None
    assert caps.tasks.requests is not None and caps.tasks.requests.tools is not None
    assert caps.tasks.list is not None and caps.tasks.cancel is not None
    offered = {t["name"]: t.get("execution") for t in tools["tools"] if t.get("execution")}
    assert offered == {
        name: {"taskSupport": "optional"}
        for name in ("workflow_start", "workflow_resume", "step_complete")
    }


async def test_workflow_start_as_a_task_returns_at_once_and_its_result_is_workflow_result() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            created = await start_task_v1(c, "workflow_start", {"spec": BUILTIN_CHAIN}, ttl=60_000)
            task = created["task"]
            tid, rid = task["taskId"], created["_meta"][RUN_ID]
            result = await raw(c, "tasks/result", {"taskId": tid})
            got = await raw(c, "tasks/get", {"taskId": tid})
            listed = await raw(c, "tasks/list", {})
            expected = await call(c, "workflow_result", run_id=rid)
    assert task["status"] == "working" and task["ttl"] == 60_000 and task["pollInterval"] > 0
    assert len(tid) > 20  # unguessable: the id is all that guards the task
    assert result["structuredContent"] == expected
    assert result["isError"] is False
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": tid}
    assert (got["status"], got["_meta"][RUN_ID]) == ("completed", rid)
    assert "pollInterval" not in got  # finished: nothing to poll for
    assert [t["taskId"] for t in listed["tasks"]] == [tid]


async def test_a_client_step_makes_the_task_input_required_until_step_complete_reports_it() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            created = await start_task_v1(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            tid, rid = created["task"]["taskId"], created["_meta"][RUN_ID]
            waiting = await raw(c, "tasks/get", {"taskId": tid})
            await call(c, "step_complete", run_id=rid, step_id="ask", output="7")
            result = await raw(c, "tasks/result", {"taskId": tid})
    assert waiting["status"] == "input_required"
    assert f"step_complete('{rid}'" in waiting["statusMessage"]
    assert result["structuredContent"]["outputs"] == {"ask": "7"}


async def test_tasks_result_answers_within_its_bound_when_the_task_is_not_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks_ext, "RESULT_WAIT_S", 0.2)
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            created = await start_task_v1(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            with pytest.raises(MCPError) as err:
                await raw(c, "tasks/result", {"taskId": created["task"]["taskId"]})
    assert err.value.error.code == tasks_ext.STILL_RUNNING
    assert "input_required" in err.value.error.message
    assert "tasks/get" in err.value.error.message


async def test_tasks_cancel_cancels_the_run_and_a_finished_task_cannot_be_cancelled() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            created = await start_task_v1(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            tid, rid = created["task"]["taskId"], created["_meta"][RUN_ID]
            cancelled = await raw(c, "tasks/cancel", {"taskId": tid})
            run = await call(c, "workflow_status", run_id=rid)
            with pytest.raises(MCPError) as again:
                await raw(c, "tasks/cancel", {"taskId": tid})
            result = await raw(c, "tasks/result", {"taskId": tid})
    assert cancelled["status"] == "cancelled"
    assert run["status"] == "cancelled"
    assert again.value.error.code == -32602 and "terminal status cancelled" in str(again.value)
    assert result["isError"] is True and result["structuredContent"]["status"] == "cancelled"


async def test_a_run_that_fails_makes_a_failed_task_whose_result_is_the_error_analysis() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            created = await start_task_v1(c, "workflow_start", {"spec": FAILING})
            tid = created["task"]["taskId"]
            result = await raw(c, "tasks/result", {"taskId": tid})
            got = await raw(c, "tasks/get", {"taskId": tid})
    assert got["status"] == "failed"
    assert result["isError"] is True
    assert result["structuredContent"]["status"] == "failed"
    assert result["structuredContent"]["recovery"] is not None


async def test_a_call_refused_before_it_made_a_run_is_a_failed_task_holding_the_refusal() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            created = await start_task_v1(c, "workflow_start", {"spec": {"name": "x"}})
            tid = created["task"]["taskId"]
            got = await raw(c, "tasks/get", {"taskId": tid})
            result = await raw(c, "tasks/result", {"taskId": tid})
    assert RUN_ID not in created["_meta"]
    assert got["status"] == "failed"
    assert result["isError"] is True and "steps" in result["content"][0]["text"]


async def test_tasks_are_refused_for_other_tools_and_unknown_ids_with_the_spec_codes() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            with pytest.raises(MCPError) as other:
                await start_task_v1(c, "workflow_list", {})
            with pytest.raises(MCPError) as unknown:
                await raw(c, "tasks/get", {"taskId": "task_nope"})
            with pytest.raises(MCPError) as cursor:
                await raw(c, "tasks/list", {"cursor": "%%%"})
    assert other.value.error.code == -32601 and "workflow_start" in other.value.error.message
    assert unknown.value.error.code == -32602 and "tasks/list" in unknown.value.error.message
    assert cursor.value.error.code == -32602


async def test_step_complete_as_a_task_resumes_a_run_left_by_a_stopped_server(
    tmp_path: Path,
) -> None:
    config = Settings(db_path=tmp_path / "tutti.db")
    with anyio.fail_after(15):
        async with connect("legacy", config) as c:
            run = await call(c, "workflow_start", spec=ONE_CLIENT_STEP, wait_s=5)
        async with connect("legacy", config) as c:  # the first server stopped: interrupted
            before = await call(c, "workflow_status", run_id=run["run_id"])
            created = await start_task_v1(
                c, "step_complete", {"run_id": run["run_id"], "step_id": "ask", "output": "11"}
            )
            result = await raw(c, "tasks/result", {"taskId": created["task"]["taskId"]})
    assert before["status"] == "interrupted"
    assert created["_meta"][RUN_ID] == run["run_id"]
    assert result["structuredContent"]["status"] == "succeeded"
    assert result["structuredContent"]["outputs"] == {"ask": "11"}


async def test_a_task_survives_its_server_and_the_next_server_resumes_its_run(
    tmp_path: Path,
) -> None:
    config = Settings(db_path=tmp_path / "tutti.db")
    with anyio.fail_after(15):
        async with connect("legacy", config) as c:
            created = await start_task_v1(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            tid, rid = created["task"]["taskId"], created["_meta"][RUN_ID]
        async with connect("legacy", config) as c:
            listed = await raw(c, "tasks/list", {})  # lists it, resumes nothing
            still = await call(c, "workflow_status", run_id=rid)
            got = await raw(c, "tasks/get", {"taskId": tid})  # resumes the run
            run = await call(c, "workflow_status", run_id=rid, wait_s=5)
            asked = await raw(c, "tasks/get", {"taskId": tid})
            await call(c, "step_complete", run_id=rid, step_id="ask", output="13")
            result = await raw(c, "tasks/result", {"taskId": tid})
    assert [t["taskId"] for t in listed["tasks"]] == [tid] and still["status"] == "interrupted"
    assert got["status"] in ("working", "input_required")  # as far as the resumed run got
    assert got["statusMessage"].startswith("resumed after its server stopped")
    assert run["status"] == "running" and run["client_tasks"][0]["step_id"] == "ask"
    assert asked["status"] == "input_required"
    assert result["structuredContent"]["outputs"] == {"ask": "13"}


# -- 2026-07-28 ------------------------------------------------------------------------------
async def test_a_client_declaring_the_extension_answers_a_client_step_by_tasks_update() -> None:
    with anyio.fail_after(10):
        async with connect("auto", extensions=[TasksClaim()]) as c:
            assert c.server_capabilities.extensions == {"io.modelcontextprotocol/tasks": {}}
            created = await start_task_v2(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            rid = created.meta and created.meta[RUN_ID]
            waiting = await request(c, "tasks/get", taskId=created.task_id)
            ((key, ask),) = waiting["inputRequests"].items()
            ack = await request(
                c,
                "tasks/update",
                taskId=created.task_id,
                inputResponses={key: {"action": "accept", "content": {"output": "7"}}},
            )
            again = await request(
                c,
                "tasks/update",
                taskId=created.task_id,
                inputResponses={key: {"action": "accept", "content": {"output": "8"}}},
            )
            await call(c, "workflow_status", run_id=rid, wait_s=5)
            done = await request(c, "tasks/get", taskId=created.task_id)
            expected = await call(c, "workflow_result", run_id=rid)
    assert waiting["status"] == "input_required" and waiting["pollIntervalMs"] > 0
    assert ask["method"] == "elicitation/create"
    assert ask["params"]["mode"] == "form" and "Name one prime." in ask["params"]["message"]
    assert ack["resultType"] == "complete" and again["resultType"] == "complete"
    assert done["status"] == "completed" and "pollIntervalMs" not in done
    assert done["result"]["structuredContent"] == expected
    assert done["result"]["resultType"] == "complete"  # a 2026-07-28 CallToolResult
    assert expected["outputs"] == {"ask": "7"}  # the second answer was to a closed request


async def test_an_approval_gate_is_asked_as_a_form_and_answered_through_tasks_update() -> None:
    with anyio.fail_after(10):
        async with connect("auto", extensions=[TasksClaim()]) as c:
            created = await start_task_v2(c, "workflow_start", {"spec": GATE})
            rid = created.meta and created.meta[RUN_ID]
            await call(c, "workflow_status", run_id=rid, wait_s=5)
            waiting = await request(c, "tasks/get", taskId=created.task_id)
            ((key, ask),) = waiting["inputRequests"].items()
            await request(
                c,
                "tasks/update",
                taskId=created.task_id,
                inputResponses={key: {"action": "accept", "content": {"approve": True}}},
            )
            run = await call(c, "workflow_status", run_id=rid, wait_s=5)
            result = await call(c, "workflow_result", run_id=rid)
    assert "Apply two edits?" in ask["params"]["message"]
    assert ask["params"]["requestedSchema"]["required"] == ["approve"]
    assert run["status"] == "succeeded"
    assert result["outputs"]["apply"] == "applied"


async def test_a_failed_run_is_a_completed_task_with_an_error_result_on_the_extension() -> None:
    with anyio.fail_after(10):
        async with connect("auto", extensions=[TasksClaim()]) as c:
            created = await start_task_v2(c, "workflow_start", {"spec": FAILING})
            rid = created.meta and created.meta[RUN_ID]
            await call(c, "workflow_status", run_id=rid, wait_s=5)
            done = await request(c, "tasks/get", taskId=created.task_id)
    # the extension keeps `failed` for JSON-RPC errors; a failed run is a tool result
    assert done["status"] == "completed"
    assert done["result"]["isError"] is True
    assert done["result"]["structuredContent"]["status"] == "failed"


async def test_tasks_cancel_on_the_extension_acknowledges_and_cancels_the_run() -> None:
    with anyio.fail_after(10):
        async with connect("auto", extensions=[TasksClaim()]) as c:
            created = await start_task_v2(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            ack = await request(c, "tasks/cancel", taskId=created.task_id)
            done = await request(c, "tasks/get", taskId=created.task_id)
            twice = await request(c, "tasks/cancel", taskId=created.task_id)
    assert ack["resultType"] == "complete" and twice["resultType"] == "complete"
    assert done["status"] == "cancelled"


async def test_clients_that_ask_for_no_task_get_the_tool_answer_as_before(mode: str) -> None:
    with anyio.fail_after(10):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=5)
    assert run["status"] == "succeeded" and set(run) >= {"run_id", "steps", "next"}


async def test_each_generation_serves_only_its_own_tasks_methods() -> None:
    with anyio.fail_after(10):
        async with connect("legacy") as c:
            with pytest.raises(MCPError) as update:
                await raw(c, "tasks/update", {"taskId": "x", "inputResponses": {}})
        async with connect("auto", extensions=[TasksClaim()]) as c:
            with pytest.raises(MCPError) as listing:
                await request(c, "tasks/list")
    assert update.value.error.code == -32601
    assert listing.value.error.code == -32601


async def test_a_parked_sampling_step_is_an_input_request_answered_by_tasks_update() -> None:
    """2026-07-28 has no back-channel: a sampling step's request waits for the client. As a
    task, it is among the task's input requests, without a workflow_status call."""
    asked: list[Any] = []

    async def model(context: Any, params: Any) -> Any:  # never used: tasks/update answers
        asked.append(params)
        raise AssertionError("the sampling request went around the task")

    spec = {"name": "sampled", "steps": [{"id": "owl", "prompt": "Say owl.", "run": "sampling"}]}
    with anyio.fail_after(10):
        async with connect("auto", extensions=[TasksClaim()], sampling_callback=model) as c:
            created = await start_task_v2(c, "workflow_start", {"spec": spec})
            rid = created.meta and created.meta[RUN_ID]
            waiting: dict[str, Any] = {}
            while waiting.get("status") != "input_required":  # until the step has parked
                await anyio.wait_all_tasks_blocked()
                waiting = await request(c, "tasks/get", taskId=created.task_id)
            ((key, ask),) = waiting["inputRequests"].items()
            reply = {"role": "assistant", "content": {"type": "text", "text": "owl"}, "model": "m"}
            await request(c, "tasks/update", taskId=created.task_id, inputResponses={key: reply})
            result = await call(c, "workflow_status", run_id=rid, wait_s=5)
    assert ask["method"] == "sampling/createMessage"
    assert ask["params"]["messages"][0]["content"]["text"] == "Say owl."
    assert result["status"] == "succeeded" and result["outputs"] == {"owl": "owl"}
    assert asked == []
