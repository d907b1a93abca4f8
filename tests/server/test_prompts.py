"""The prompts teach a spec format by example: the example must be a valid spec. A prompt asked
for without a required argument is the caller's mistake, answered as one."""

from __future__ import annotations

import anyio
import pytest
import yaml
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from tests.server.mcp_support import connect
from tutti_mcp.engine.modes.swarm.spec import ConflictResolution, Topology
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.server.prompts import (
    FLOW_EXAMPLE,
    GATE_EXAMPLE,
    GROWING,
    PIPELINE_EXAMPLE,
    SPEC_FORMAT,
    SWARM_EXAMPLE,
)


def test_the_spec_example_in_the_prompts_compiles() -> None:
    example = SPEC_FORMAT.split("\n", 1)[1].split("Other step kinds")[0]
    wf = compile_workflow(parse_spec(yaml.safe_load(example)))
    assert wf.order == ["research", "draft", "check"]
    assert wf.steps["check"].executor is ExecutorKind.PROMPT
    assert wf.deps["check"] == ("draft",)  # implicit: its condition and args read draft


def test_the_fan_out_and_loop_example_in_the_prompts_compiles() -> None:
    example = GROWING.split("\n", 1)[1]
    wf = compile_workflow(parse_spec(yaml.safe_load(example)))
    assert wf.groups == {"review", "refine"}
    assert wf.deps["refine"] == ("review",)
    assert wf.bodies["refine"].deps == {"draft": (), "critique": ("draft",)}


@pytest.mark.anyio
async def test_a_prompt_without_its_required_argument_is_invalid_params_naming_it(
    mode: str,
) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            with pytest.raises(MCPError) as raised:
                await c.get_prompt("swarm", {"agents": "2"})
    assert (raised.value.code, raised.value.message) == (
        INVALID_PARAMS,
        "prompt 'swarm' is missing the required argument 'request'; it takes: "
        "request (required), agents (optional). Call prompts/get again with argument "
        "'request' set.",
    )


@pytest.mark.anyio
async def test_a_prompt_without_its_optional_arguments_renders(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            got = await c.get_prompt("resume", {})
    assert "workflow_list" in "\n".join(getattr(m.content, "text", "") for m in got.messages)


def test_the_gate_example_in_the_flow_prompt_compiles() -> None:
    wf = compile_workflow(parse_spec(yaml.safe_load(GATE_EXAMPLE)))
    assert wf.executors["confirm"] is ExecutorKind.GATE
    assert wf.reject_to == {"confirm": "explain"}
    assert wf.deps["apply"] == ("confirm", "plan")  # and the plan it reads


@pytest.mark.anyio
async def test_the_flow_prompt_teaches_an_if_block_with_an_example_that_compiles(
    mode: str,
) -> None:
    wf = compile_workflow(parse_spec(yaml.safe_load(FLOW_EXAMPLE)))
    assert wf.order == ["triage", "escalate", "reply", "route", "log"]
    assert (list(wf.blocks), wf.deps["log"]) == (["route"], ("route",))
    with anyio.fail_after(20):
        async with connect(mode) as c:
            got = await c.get_prompt("flow", {"request": "triage this bug report"})
    assert FLOW_EXAMPLE in "\n".join(getattr(m.content, "text", "") for m in got.messages)


@pytest.mark.anyio
async def test_the_swarm_prompt_teaches_swarm_mode_with_an_example_that_compiles(
    mode: str,
) -> None:
    spec = parse_spec(yaml.safe_load(SWARM_EXAMPLE))
    wf = compile_workflow(spec)
    swarm = wf.steps["swarm"].swarm
    assert swarm is not None and wf.order == ["swarm"]  # the top-level form: one swarm step
    assert (swarm.topology, swarm.lead, swarm.workers) == (
        Topology.HIERARCHICAL,
        "coordinator",
        ["security", "reliability", "performance"],
    )
    assert swarm.coordination.conflict_resolution is ConflictResolution.CONSENSUS
    assert swarm.agents["security"].backup == "reliability"
    assert spec.inputs["task"].required and swarm.task == "${inputs.task}"
    with anyio.fail_after(20):
        async with connect(mode) as c:
            got = await c.get_prompt("swarm", {"request": "review the payment service"})
    text = "\n".join(getattr(m.content, "text", "") for m in got.messages)
    assert SWARM_EXAMPLE in text and "review the payment service" in text
    assert "depends_on" not in text  # a swarm, not a chain that imitates one


def test_the_pipeline_prompt_teaches_a_pipeline_spec_that_compiles() -> None:
    wf = compile_workflow(parse_spec(yaml.safe_load(PIPELINE_EXAMPLE)))
    step = wf.steps["pipeline"]
    assert step.pipeline is not None
    assert step.pipeline.stage_ids == ["read", "summary", "row"]
    assert step.pipeline.stages[1].executor is ExecutorKind.PROMPT
    assert step.pipeline.sink.jsonl == "summaries.jsonl"


@pytest.mark.anyio
async def test_the_pipeline_prompt_carries_its_example(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            got = await c.get_prompt("pipeline", {"request": "summarise my notes"})
    text = "\n".join(getattr(m.content, "text", "") for m in got.messages)
    assert "type: pipeline" in text and PIPELINE_EXAMPLE in text
