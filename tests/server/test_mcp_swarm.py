"""The seed's swarm example, verbatim, over MCP with no API key: the calling agent does each
agent's turn (its role as its instructions) and reports it with step_complete."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.engine.test_swarm import SEED
from tests.server.mcp_support import call, connect, tasks_of

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
