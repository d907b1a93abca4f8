"""The swarm spec: the seed's top-level form, the step form, and the problems reported
before anything runs, each at the field as written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.test_swarm import SEED
from tutti_mcp.engine.errors import SpecError
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.plan import estimate_cost, make_plan
from tutti_mcp.engine.spec import parse_spec
from tutti_mcp.engine.workflow import compile_workflow


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        compile_workflow(parse_spec(data))
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_the_seeds_form_is_one_swarm_step_whose_task_the_caller_gives() -> None:
    spec = parse_spec(SEED)
    assert [s.id for s in spec.steps] == ["swarm"]
    assert spec.inputs["task"].required
    assert spec.steps[0].swarm is not None and spec.steps[0].swarm.task == "${inputs.task}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"topology": "ring"}, "topology: Input should be 'hierarchical', 'mesh', 'pipeline' or"),
        (
            {"agents": {"coordinator": {"role": "x", "backup": "ghost"}, "b": {"role": "y"}}},
            "spec: agents.coordinator.backup: unknown agent 'ghost'; agents: coordinator, b",
        ),
        (
            {"coordination": {"coordinator": "boss"}},
            "spec: coordination.coordinator: unknown agent 'boss'; agents: coordinator, "
            "security_specialist, performance_specialist",
        ),
        (
            {"agents": {"solo": {"role": "x"}}},
            "spec: a hierarchical swarm needs a coordinator and at least one other agent; it has "
            "only solo",
        ),
        (
            {"agents": {"a": {"role": "x", "run": "shell"}, "b": {"role": "y"}}},
            "agents.a.run: an agent runs on a model: prompt, client or sampling, not 'shell'",
        ),
        ({"agents": {"a": {"role": ""}, "b": {"role": "y"}}}, "agents.a.role: String should"),
        ({"coordination": {"conflict_resolution": "dice"}}, "coordination.conflict_resolution:"),
    ],
)
def test_each_bad_field_is_named_before_anything_runs(
    change: dict[str, Any], expected: str
) -> None:
    [problem] = problems({**SEED, **change})
    assert problem.startswith(expected), problem


def test_an_unknown_reference_in_the_task_is_reported_at_the_task() -> None:
    assert problems({**SEED, "task": "${nope.output}"}) == [
        "steps[0] (swarm).swarm.task: unknown step or name 'nope' in template; known: swarm"
    ]


def test_a_swarm_step_in_a_chain_reads_an_earlier_step_and_depends_on_it() -> None:
    spec = {
        "steps": [
            {"id": "brief", "value": "the brief"},
            {"id": "panel", "swarm": {"agents": SEED["agents"], "task": "${brief.output}"}},
        ]
    }
    wf = compile_workflow(parse_spec(spec))
    assert wf.deps["panel"] == ("brief",)
    assert "panel" in wf.groups


def test_a_swarm_step_cannot_carry_a_prompt_of_its_own() -> None:
    spec = {"steps": [{"id": "s", "prompt": "hi", "swarm": {"agents": SEED["agents"]}}]}
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert "a swarm step runs its agents' turns; it cannot have prompt of its own" in str(
        info.value
    )


def test_the_plan_shows_each_agent_and_prices_their_expected_turns() -> None:
    wf = compile_workflow(parse_spec(SEED))
    models = ModelTable()
    plan = make_plan(wf, models)
    step = plan.steps["swarm"]
    assert step.shape == (
        "hierarchical swarm of 3 agents: coordinator plans, 2 specialists work in parallel, "
        "coordinator synthesises"
    )
    assert step.agents is not None
    assert step.agents["coordinator"]["model"] == models.model_id("claude-4-opus")
    assert step.agents["security_specialist"]["model"] == models.model_id("claude-4-sonnet")
    assert step.agents["coordinator"]["thinking"] == "standard"  # auto cannot score a turn
    cost = estimate_cost(wf, plan, models)["steps"]["swarm"]
    one_opus_turn = cost["agents"]["coordinator"]["usd_low"]
    assert cost["usd_low"] == pytest.approx(
        2 * one_opus_turn + 2 * cost["agents"]["security_specialist"]["usd_low"], abs=1e-4
    )


def test_auto_mode_names_a_declared_swarm() -> None:
    spec = {"steps": [{"id": "panel", "swarm": {"topology": "mesh", "agents": SEED["agents"]}}]}
    plan = make_plan(compile_workflow(parse_spec({**spec, "inputs": {"task": "x"}})))
    assert plan.mode.value == "swarm"
    assert plan.mode_reason == "swarm: panel is a mesh swarm of 3 agents"


def test_a_swarm_inside_a_loop_is_refused_naming_the_step() -> None:
    swarm = {"id": "s", "swarm": {"agents": SEED["agents"], "task": "x"}}
    loop = {"max_iterations": 2, "until": "true", "steps": [swarm]}
    assert problems({"steps": [{"id": "l", "loop": loop}]}) == [
        "steps[0] (l).loop.steps[0] (s): `swarm` is not supported inside a loop yet; make it a "
        "step of its own before or after the loop"
    ]
