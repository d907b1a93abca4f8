"""Swarm mode on the fake Messages API, with scripted agents: each topology runs its
agents' turns as durable steps, in parallel where the topology allows."""

from __future__ import annotations

from typing import Any

import anthropic
import anyio
import pytest

from tests.engine.swarm_support import fails, fake, run_swarm, who
from tests.fake_anthropic import FakeAnthropic
from tests.seed import SEED_SWARM
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.executors.prompt import PromptExecutor
from tutti_mcp.engine.report import gantt, markdown_report
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunStatus, StepStatus

__all__ = ["fake"]
pytestmark = pytest.mark.anyio

SEED = SEED_SWARM


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
    tools = {who(b)[0]: sorted(t["name"] for t in b.get("tools", [])) for b in fake.bodies}
    assert tools == {  # each agent's toolbox: the seed's /grep, /glob and /bash forms
        "coordinator": [],
        "security_specialist": ["bash", "grep"],
        "performance_specialist": ["bash", "glob"],
    }


def swarm(topology: str, agents: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "swarm", "topology": topology, "agents": agents, **more}


def roles(*names: str, **extra: dict[str, Any]) -> dict[str, Any]:
    return {n: {"role": f"{n} role", **extra.get(n, {})} for n in names}


async def test_a_subtask_for_an_unknown_specialist_is_reassigned_with_the_reason(
    fake: FakeAnthropic,
) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        if phase == "plan":
            return {"subtasks": [{"agent": "dba", "task": "Check the indexes"}]}
        return hierarchical(agent, phase, prompt)

    run, _agents = await run_swarm(fake, SEED, answer)
    out = run.steps["swarm"].output
    assert run.status is RunStatus.SUCCEEDED, run.error
    # the first specialist in spec order, the least busy, takes it
    assert "swarm[security_specialist:work#1]" in run.steps
    assert out["notes"] == [
        "subtask 1: 'dba' is not a specialist of this swarm: given to security_specialist"
    ]


async def test_a_mesh_revises_on_the_shared_board_until_the_agents_agree(
    fake: FakeAnthropic,
) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        assert phase == "draft"
        if "The board" not in prompt:  # round 1: they differ
            return {"answer": f"{agent} draft", "position": f"use {agent}'s plan"}
        assert "ann draft" in prompt and "bob draft" in prompt  # each sees the others' drafts
        return {"answer": f"{agent} agrees", "position": "Use Bob's plan."}

    spec = swarm("mesh", roles("ann", "bob"), max_rounds=4)
    run, agents = await run_swarm(fake, spec, answer)
    out = run.steps["swarm"].output
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert len(agents.asked) == 4  # two rounds of two drafts: agreed in round 2
    assert out["notes"] == ["the agents agreed in round 2: Use Bob's plan."]
    assert out["result"] == "ann agrees"
    assert out["consensus"] == []
    assert out["figures"]["batches"] == 2


async def test_a_mesh_that_never_agrees_votes_and_the_majority_decides(
    fake: FakeAnthropic,
) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        if phase == "draft":
            pos = "yes" if agent in ("ann", "bob") else "no"
            if agent == "bob":
                pos = "maybe"
            return {"answer": f"{agent}: {pos}", "position": pos}
        assert phase == "ballot"
        return {"choice": 1, "rationale": f"{agent} likes yes", "confidence": 0.9}

    spec = swarm(
        "mesh",
        roles("ann", "bob", "cy"),
        max_rounds=2,
        coordination={"conflict_resolution": "vote"},
    )
    run, _ = await run_swarm(fake, spec, answer)
    out = run.steps["swarm"].output
    assert run.status is RunStatus.SUCCEEDED, run.error
    [record] = out["consensus"]
    assert record["options"] == ["yes", "maybe", "no"]
    assert record["tally"]["rule"] == "majority"
    assert record["tally"]["votes"] == {"1": 3, "2": 0, "3": 0}
    assert record["decision"] == "yes" and record["decided_by"] == "vote"
    assert [b["agent"] for b in record["ballots"]] == ["ann", "bob", "cy"]
    assert out["result"] == "ann: yes"


async def test_a_star_tie_goes_to_the_hub_whose_reason_is_recorded(fake: FakeAnthropic) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        if phase == "answer":
            return {"answer": f"{agent} says", "position": agent}
        if phase == "ballot":  # each votes for its own position: a tie
            return {"choice": 1 if agent == "s1" else 2, "rationale": "mine", "confidence": 1}
        if phase == "decide":
            assert "a tie between option 1 and option 2" in prompt
            return {"choice": 2, "reason": "s2 cites evidence"}
        assert phase == "aggregate" and "The swarm decided" in prompt
        return "hub's aggregate"

    spec = swarm("star", roles("hub", "s1", "s2"))
    run, agents = await run_swarm(fake, spec, answer)
    out = run.steps["swarm"].output
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert out["result"] == "hub's aggregate"
    [record] = out["consensus"]
    assert record["tally"]["rule"] == "supermajority"  # consensus's default
    assert record["tally"]["winner"] is None
    assert record["decision"] == "s2" and record["decided_by"] == "coordinator"
    assert record["reason"] == "a tie between option 1 and option 2; s2 cites evidence"
    assert sorted(agents.asked[:2]) == [("s1", "answer"), ("s2", "answer")]
    assert agents.asked[-1] == ("hub", "aggregate")
    report = markdown_report(run)  # auditable after the fact
    assert "## Swarm `swarm` (star)" in report
    assert "Rule supermajority; votes option 1: 1, option 2: 1; a tie between" in report
    assert "- s1: option 1 (confidence 1.0): mine" in report
    assert "**Decision:** s2 (by coordinator: a tie between option 1 and option 2; s2 " in report
    assert "hub -->|1| s1" in report
    # the Gantt chart names each turn in words Mermaid accepts
    assert "  swarm[s1 answer] :t" in gantt(run)


async def test_a_pipeline_swarm_refines_in_order(fake: FakeAnthropic) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        assert phase == "refine"
        if agent == "drafter":
            assert "first in the line" in prompt
            return "v1"
        assert "<previous>\nv1\n</previous>" in prompt
        return "v2"

    run, agents = await run_swarm(fake, swarm("pipeline", roles("drafter", "editor")), answer)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.steps["swarm"].output["result"] == "v2"
    assert agents.asked == [("drafter", "refine"), ("editor", "refine")]
    talks = run.steps["swarm"].output["talks"]
    assert talks == [{"from": "drafter", "to": "editor", "messages": 1}]


# -- recovery by severity --------------------------------------------------------------------
async def test_a_failed_coordinator_is_replaced_by_its_backup(fake: FakeAnthropic) -> None:
    spec = swarm(
        "hierarchical",
        roles("coordinator", "a", "b", coordinator={"backup": "b"}),
    )

    def answer(agent: str, phase: str, prompt: str) -> Any:
        if agent == "coordinator":
            return fails()
        if phase == "plan":
            assert "Agent coordinator could not do this turn" in prompt
            return {"subtasks": [{"agent": "a", "task": "do it"}]}
        if phase == "work":
            return "done"
        return {"result": "by the backup", "conflicts": []}

    run, _agents = await run_swarm(fake, spec, answer)
    out = run.steps["swarm"].output
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert out["result"] == "by the backup"
    assert "swarm[b:plan~coordinator]" in run.steps
    first = out["recovery"][0]
    assert first["severity"] == "critical" and first["action"] == "backup"
    assert first["to"] == "b" and first["agent"] == "coordinator"
    assert "coordinator is the coordinator" in first["reason"]


async def test_a_failed_specialists_subtask_is_redistributed_to_a_capable_agent(
    fake: FakeAnthropic,
) -> None:
    caps = {"a": {"capabilities": ["sql"]}, "b": {"capabilities": ["sql", "web"]}}
    spec = swarm("hierarchical", roles("coordinator", "a", "b", "c", **caps))

    def answer(agent: str, phase: str, prompt: str) -> Any:
        if phase == "plan":
            return {"subtasks": [{"agent": "a", "task": "tune", "capability": "sql"}]}
        if phase == "work":
            return fails() if agent == "a" else f"{agent} did it"
        return {"result": str(prompt.count("did it")), "conflicts": []}

    run, _ = await run_swarm(fake, spec, answer)
    out = run.steps["swarm"].output
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.steps["swarm[a:work#1]"].status is StepStatus.FAILED
    assert run.steps["swarm[b:work#1~a]"].output == "b did it"  # c lacks `sql`
    [rec] = out["recovery"]
    assert (rec["severity"], rec["action"], rec["to"]) == ("major", "redistribute", "b")
    assert out["partial"] is False


async def test_a_failed_spoke_with_no_stand_in_degrades_the_swarm_naming_what_is_missing(
    fake: FakeAnthropic,
) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        if phase == "answer":
            return fails() if agent == "s2" else {"answer": "fine", "position": "ok"}
        assert "Missing (a spoke failed): s2's answer" in prompt
        return "aggregate without s2"

    run, _ = await run_swarm(fake, swarm("star", roles("hub", "s1", "s2")), answer)
    rec = run.steps["swarm"]
    assert rec.status is StepStatus.DEGRADED
    assert rec.output["partial"] is True and rec.output["missing"] == ["s2's answer"]
    [decision] = rec.output["recovery"]
    assert (decision["severity"], decision["action"]) == ("minor", "degrade")
    assert "- `swarm[s2:answer]` (s2): minor, degrade: s2 failed its turn" in markdown_report(run)
    assert rec.error == "partial: 1 missing: s2's answer"


async def test_a_critical_agent_with_no_backup_escalates_and_the_run_waits_for_the_caller(
    fake: FakeAnthropic,
) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        return fails() if agent == "hub" else {"answer": "x", "position": "x"}

    store = InMemoryRunStore()
    client = ClientExecutor()
    run, _ = await run_swarm(
        fake,
        swarm("star", roles("hub", "s1")),
        answer,
        store=store,
        extra={ExecutorKind.CLIENT: client},
    )
    assert run.status is RunStatus.WAITING
    escalated = run.steps["swarm[caller:aggregate~hub]"]
    assert escalated.status is StepStatus.WAITING
    assert "Escalated to you: agent hub failed this turn" in escalated.request["instructions"]
    [rec] = [r for r in run.steps.values() if r.scope and "recovery" in r.scope]
    assert (rec.scope or {})["recovery"]["action"] == "escalate"
    # the caller does the hub's turn; the swarm ends with it
    async with anthropic.AsyncAnthropic(api_key="k", base_url=fake.base_url) as api:
        executors: dict[ExecutorKind, StepExecutor] = {
            ExecutorKind.CLIENT: client,
            ExecutorKind.PROMPT: PromptExecutor(api),
        }
        caller = Engine(store, executors, EngineConfig())
        with anyio.fail_after(10):
            await caller.complete_step(run.id, "swarm[caller:aggregate~hub]", output="done by me")
            run = await caller.resume(run.id)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.steps["swarm"].output["result"] == "done by me"


async def test_a_turn_handed_to_the_client_is_completed_from_another_process_and_resumed(
    fake: FakeAnthropic,
) -> None:
    """`tutti complete` in a second process: the turn is found by its id and scope."""
    store = InMemoryRunStore()
    spec = {**SEED, "defaults": {"model_executor": "client"}}
    first = Engine(store, {ExecutorKind.CLIENT: ClientExecutor()}, EngineConfig())
    with anyio.fail_after(10):
        run = await first.run(spec, inputs={"task": "Review"})
        assert run.status is RunStatus.WAITING
        assert run.steps["swarm[coordinator:plan]"].request["output"] == "json"
        other = Engine(store, {ExecutorKind.CLIENT: ClientExecutor()}, EngineConfig())
        plan = {"subtasks": [{"agent": "security_specialist", "task": "audit"}]}
        await other.complete_step(run.id, "swarm[coordinator:plan]", output=plan)
        run = await other.resume(run.id)
    assert run.status is RunStatus.WAITING
    assert run.steps["swarm[coordinator:plan]"].output == plan
    assert run.steps["swarm[security_specialist:work#1]"].status is StepStatus.WAITING


async def test_a_token_budget_stops_the_swarm_between_turns_keeping_what_committed(
    fake: FakeAnthropic,
) -> None:
    spec = {**SEED, "budget": {"max_tokens": 10}}
    run, agents = await run_swarm(fake, spec, hierarchical)
    assert run.status is RunStatus.FAILED
    assert "budget" in (run.error or "")
    assert agents.asked == [("coordinator", "plan")]  # no turn starts once it is spent
    assert run.steps["swarm[coordinator:plan]"].status is StepStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("coordination", "sees_task", "sees_context", "hears"),
    [
        ({}, False, True, False),  # hierarchical state sharing, event driven
        ({"state_sharing": "shared"}, True, True, False),
        ({"state_sharing": "isolated"}, False, False, False),
        ({"communication": "broadcast"}, False, True, True),
    ],
)
async def test_what_a_specialist_sees_follows_the_coordination_settings(
    fake: FakeAnthropic,
    coordination: dict[str, str],
    sees_task: bool,
    sees_context: bool,
    hears: bool,
) -> None:
    seen: dict[str, str] = {}

    def answer(agent: str, phase: str, prompt: str) -> Any:
        if phase == "plan":
            return {"subtasks": [{"agent": "a", "task": "part", "context": "CTX-FOR-A"}]}
        if phase == "work":
            seen["work"] = prompt
            return "a's result"
        return {"result": "r", "conflicts": []}

    spec = swarm(
        "hierarchical", roles("coordinator", "a"), task="TASK-TEXT", coordination=coordination
    )
    run, _ = await run_swarm(fake, spec, answer, inputs={})
    assert run.status is RunStatus.SUCCEEDED, run.error
    said = seen["work"]
    assert ("TASK-TEXT" in said) is sees_task
    assert ("CTX-FOR-A" in said) is sees_context
    assert ("What the swarm has said so far" in said) is hears


async def test_an_agent_that_failed_is_not_asked_again_its_backup_keeps_its_place(
    fake: FakeAnthropic,
) -> None:
    def answer(agent: str, phase: str, prompt: str) -> Any:
        if agent == "ann":
            return fails()
        k = 1 if "The board" not in prompt else 2
        return {"answer": f"{agent} r{k}", "position": f"p{k}" if k == 2 else agent}

    spec = swarm("mesh", roles("ann", "bob", "cy", ann={"backup": "bob"}), max_rounds=3)
    run, agents = await run_swarm(fake, spec, answer)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert agents.asked.count(("ann", "draft")) == 1  # down after its one failure
    assert "swarm[bob:draft#2~ann]" in run.steps  # bob keeps ann's place in round 2
    actions = [(r["turn"], r["action"]) for r in run.steps["swarm"].output["recovery"]]
    assert actions == [
        ("swarm[ann:draft#1]", "backup"),
        ("draft#2@ann", "backup"),
    ]
