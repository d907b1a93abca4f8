"""Approval gates over MCP: asked by elicitation when the client offers it on a connection
with a back-channel (handshake protocol), else handed to the calling agent as a client
task answered with step_complete."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp.client.session import ClientRequestContext
from mcp_types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult

from tests.server.mcp_support import call, connect, fail, tasks_of, until_settled

pytestmark = pytest.mark.anyio

GATED: dict[str, Any] = {
    "name": "gated",
    "steps": [
        {"id": "plan", "value": {"count": 2}},
        {"id": "confirm", "approve": "Apply ${plan.output.count} edits?", "preview": "a, b"},
        {"id": "apply", "depends_on": ["confirm"], "args": "applied ${plan.output.count}"},
    ],
}


class User:
    """The client's user, answering each elicitation as told."""

    def __init__(self, action: str, content: dict[str, Any] | None = None) -> None:
        self.action = action
        self.content = content
        self.asked: list[ElicitRequestParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        self.asked.append(params)
        return ElicitResult(action=self.action, content=self.content)


async def test_a_gate_is_asked_by_elicitation_and_its_yes_lets_the_run_go_on() -> None:
    user = User("accept", {"approve": True, "note": "looks right"})
    with anyio.fail_after(20):
        async with connect("legacy", elicitation_callback=user) as c:
            run = await call(c, "workflow_start", spec=GATED, wait_s=10)
            final = await until_settled(c, run["run_id"]) if run["status"] == "running" else run
            result = await call(c, "workflow_result", run_id=run["run_id"])
    assert final["status"] == "succeeded", final
    (asked,) = user.asked
    assert "Apply 2 edits?" in asked.message and "a, b" in asked.message
    assert isinstance(asked, ElicitRequestFormParams)
    assert asked.requested_schema["required"] == ["approve"]
    decision = result["outputs"]["confirm"]
    assert (decision["approved"], decision["note"], decision["by"]) == (
        True,
        "looks right",
        "elicitation",
    )
    assert result["outputs"]["apply"] == "applied 2"


async def test_a_gate_declined_in_the_client_fails_the_run_naming_the_gate() -> None:
    user = User("decline")
    with anyio.fail_after(20):
        async with connect("legacy", elicitation_callback=user) as c:
            run = await call(c, "workflow_start", spec=GATED, wait_s=10)
            final = await until_settled(c, run["run_id"]) if run["status"] == "running" else run
    assert final["status"] == "failed"
    assert final["error"] == "gate 'confirm' rejected: declined in the client"
    assert final["steps"]["apply"] == "pending"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_without_elicitation_the_gate_is_a_client_task_answered_with_step_complete(
    mode: str,
) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:  # a client that declares no elicitation capability
            run = await call(c, "workflow_start", spec=GATED, wait_s=10)
            task = tasks_of(run)["confirm"]  # the run, executing here, waits on it
            assert "Apply 2 edits?" in task["instructions"]
            assert "put each question to your user" in run["next"]
            wrong = await fail(
                c, "step_complete", run_id=run["run_id"], step_id="confirm", output="yes"
            )
            assert 'output={"approve": true, "note": "..."}' in wrong
            done = await call(
                c,
                "step_complete",
                run_id=run["run_id"],
                step_id="confirm",
                output={"approve": True, "note": "ok"},
            )
            result = await call(c, "workflow_result", run_id=run["run_id"])
    assert done["status"] == "succeeded", done
    assert result["outputs"]["confirm"]["by"] == "client"
    assert result["outputs"]["apply"] == "applied 2"


async def test_on_the_newer_protocol_an_elicitation_client_gets_a_client_task() -> None:
    user = User("accept", {"approve": True})
    with anyio.fail_after(20):
        async with connect("auto", elicitation_callback=user) as c:  # no back-channel
            run = await call(c, "workflow_start", spec=GATED, wait_s=10)
    assert user.asked == []
    assert "confirm" in tasks_of(run), run
