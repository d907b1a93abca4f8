"""The seed's swarm example, verbatim, over MCP with no API key: the calling agent does each
agent's turn (its role as its instructions) and reports it with step_complete."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientRequestContext
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from tests.engine.test_swarm import SEED
from tests.server.mcp_support import call, connect, tasks_of, until_settled

pytestmark = pytest.mark.anyio


def do_turn(step_id: str, task: dict[str, Any]) -> Any:
    """What the calling agent answers for each turn it is handed."""
    said = task["instructions"]
    if step_id == "swarm[coordinator:plan]":
        assert "Security analysis" in said and "Performance optimization" in said
        return {
            "subtasks": [
                {"agent": "security_specialist", "task": "Audit the login flow"},
                {"agent": "performance_specialist", "task": "Profile the search endpoint"},
            ]
        }
    if ":work#" in step_id:
        assert "Your subtask from the coordinator" in said
        return f"findings of {step_id}"
    assert step_id == "swarm[coordinator:synthesis]", step_id
    assert "findings of swarm[security_specialist:work#1]" in said
    return json.dumps({"result": "ship it after fixing the login flow", "conflicts": []})


async def test_the_seeds_swarm_runs_over_mcp_with_the_client_doing_every_turn() -> None:
    done: list[str] = []
    with anyio.fail_after(30):
        async with connect("legacy") as c:
            run = await call(
                c, "workflow_start", spec=SEED, inputs={"task": "Review the web app"}, wait_s=5
            )
            run_id = run["run_id"]
            for _ in range(6):
                tasks = tasks_of(run)
                if not tasks:
                    break
                for sid, task in tasks.items():
                    assert task["system"].startswith("You are one step")
                    run = await call(
                        c, "step_complete", run_id=run_id, step_id=sid, output=do_turn(sid, task)
                    )
                    done.append(sid)
                if run["status"] == "running":
                    run = await call(c, "workflow_status", run_id=run_id, wait_s=5)
            result = await call(c, "workflow_result", run_id=run_id)
    assert run["status"] == "succeeded", run
    assert done[0] == "swarm[coordinator:plan]" and done[-1] == "swarm[coordinator:synthesis]"
    swarm = result["outputs"]["swarm"]
    assert swarm["result"] == "ship it after fixing the login flow"
    assert swarm["agents"]["coordinator"]["turns"] == 2


async def test_a_swarm_whose_agents_run_on_the_clients_model_through_sampling() -> None:
    """A star: the spokes and the hub are sampled from the client, over the back-channel."""
    asked: list[str] = []

    async def model(
        context: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult:
        content = params.messages[0].content
        assert isinstance(content, TextContent) and params.system_prompt is not None
        agent = params.system_prompt.split("You are ")[2].split(",")[0]
        asked.append(agent)
        if "The hub broadcasts" in content.text:
            answer = json.dumps({"answer": f"{agent} answer", "position": "same"})
        else:
            assert "s1 answer" in content.text and "s2 answer" in content.text
            answer = "the hub's aggregate"
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=answer), model="client-model"
        )

    spec = {
        "type": "swarm",
        "topology": "star",
        "agents": {n: {"role": f"{n} role", "run": "sampling"} for n in ("hub", "s1", "s2")},
        "task": "Name a colour",
    }
    with anyio.fail_after(30):
        async with connect("legacy", sampling_callback=model) as c:
            run = await call(c, "workflow_start", spec=spec, wait_s=10)
            final = await until_settled(c, run["run_id"]) if run["status"] == "running" else run
            result = await call(c, "workflow_result", run_id=run["run_id"])
    assert final["status"] == "succeeded", final
    assert result["outputs"]["swarm"]["result"] == "the hub's aggregate"
    assert sorted(asked[:2]) == ["s1", "s2"] and asked[2] == "hub"
