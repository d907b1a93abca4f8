"""Swarm mode on the fake Messages API, with scripted agents: each topology runs its
agents' turns as durable steps, in parallel where the topology allows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.swarm_support import fake, run_swarm
from tests.fake_anthropic import FakeAnthropic
from tutti_mcp.memory.runs.records import RunStatus

__all__ = ["fake"]
pytestmark = pytest.mark.anyio

SEED: dict[str, Any] = {
    "type": "swarm",
    "topology": "hierarchical",
    "agents": {
        "coordinator": {
            "role": "Task decomposition and synthesis",
            "model": "claude-4-opus",
            "capabilities": ["planning", "coordination", "synthesis"],
        },
        "security_specialist": {
            "role": "Security analysis",
            "model": "claude-4-sonnet",
            "tools": ["/grep", "/bash security-scan"],
        },
        "performance_specialist": {
            "role": "Performance optimization",
            "model": "claude-4-sonnet",
            "tools": ["/bash profiler", "/glob"],
        },
    },
    "coordination": {
        "communication": "event_driven",
        "state_sharing": "hierarchical",
        "conflict_resolution": "consensus",
    },
}


def hierarchical(agent: str, phase: str, prompt: str) -> Any:
    if phase == "plan":
        return {
            "subtasks": [
                {"agent": "security_specialist", "task": "Audit the auth code"},
                {"agent": "performance_specialist", "task": "Profile the hot path"},
            ]
        }
    if phase == "work":
        return f"{agent} found things"
    if phase == "synthesis":
        return {"result": "all good", "conflicts": []}
    raise AssertionError(f"unexpected turn {agent}/{phase}")


async def test_the_seeds_hierarchical_swarm_plans_works_in_parallel_and_synthesises(
    fake: FakeAnthropic,
) -> None:
    run, agents = await run_swarm(fake, SEED, hierarchical)
    assert run.status is RunStatus.SUCCEEDED, run.error
    out = run.steps["swarm"].output
    assert out["result"] == "all good"
    assert agents.asked[0] == ("coordinator", "plan")
    assert sorted(agents.asked[1:3]) == [
        ("performance_specialist", "work"),
        ("security_specialist", "work"),
    ]
    assert agents.asked[3] == ("coordinator", "synthesis")
    turns = [s for s, r in run.steps.items() if r.parent == "swarm"]
    assert turns == [
        "swarm[coordinator:plan]",
        "swarm[security_specialist:work#1]",
        "swarm[performance_specialist:work#2]",
        "swarm[coordinator:synthesis]",
    ]
    assert out["agents"]["security_specialist"]["turns"] == 1
    assert "coordinator -->|1| security_specialist" in out["mermaid"]
    models = {b["model"] for b in fake.bodies}
    assert len(models) == 2  # claude-4-opus and claude-4-sonnet, resolved through the aliases
