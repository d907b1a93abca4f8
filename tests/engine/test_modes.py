"""`type: auto` picks among chain, flow, swarm and pipeline from the spec's shape, and says
why."""

from __future__ import annotations

from typing import Any

import pytest

from tutti_mcp.engine.modes.auto import choose_mode
from tutti_mcp.engine.spec import Mode, parse_spec
from tutti_mcp.engine.workflow import compile_workflow

LOOP = {
    "id": "refine",
    "loop": {"steps": [{"id": "d", "args": "x"}], "until": "${true}", "max_iterations": 2},
}
SWARM = [
    {"id": "plan", "prompt": "split the problem", "output": "json"},
    {"id": "security", "prompt": "security view of ${plan.output}"},
    {"id": "speed", "prompt": "speed view of ${plan.output}"},
    {"id": "cost", "prompt": "cost view of ${plan.output}"},
    {"id": "synthesis", "prompt": "reconcile ${security.output} ${speed.output} ${cost.output}"},
]
PIPELINE = [
    {"id": "files", "value": ["a", "b"]},
    {"id": "extract", "foreach": "${files.output}", "args": "text of ${item}"},
    {"id": "summarise", "foreach": "${extract.outputs}", "args": "summary of ${item}"},
    {"id": "report", "args": "${summarise.outputs}"},
]


@pytest.mark.parametrize(
    ("steps", "mode", "reason"),
    [
        (
            [{"id": "a", "args": "x"}, {"id": "b", "args": "${a.output}"}],
            Mode.CHAIN,
            "chain: plain dependencies, no conditions",
        ),
        (
            [{"id": "a", "args": "x"}, {"id": "b", "args": "y", "when": "${a.output == 'x'}"}],
            Mode.FLOW,
            "flow: steps b run only when their condition holds",
        ),
        ([LOOP], Mode.FLOW, "flow: refine loop until done"),
        (
            [{"id": "ok", "approve": "Go on?"}, {"id": "go", "args": "x", "depends_on": ["ok"]}],
            Mode.FLOW,
            "flow: ok waits for approval",
        ),
        (
            SWARM,
            Mode.SWARM,
            "swarm: plan hands work to 3 specialists (security, speed, cost), and synthesis "
            "brings their answers together",
        ),
        (
            PIPELINE,
            Mode.PIPELINE,
            "pipeline: items flow through the stages extract -> summarise",
        ),
    ],
)
def test_auto_names_the_shape_and_why(steps: list[dict[str, Any]], mode: Mode, reason: str) -> None:
    assert choose_mode(compile_workflow(parse_spec({"steps": steps}))) == (mode, reason)


def test_one_foreach_is_not_a_pipeline_and_two_model_steps_after_a_builtin_need_a_synthesis() -> (
    None
):
    one = [PIPELINE[0], PIPELINE[1]]
    assert choose_mode(compile_workflow(parse_spec({"steps": one})))[0] is Mode.CHAIN
    no_synthesis = SWARM[:4]
    assert choose_mode(compile_workflow(parse_spec({"steps": no_synthesis})))[0] is Mode.CHAIN


def test_a_spec_that_names_its_mode_keeps_it() -> None:
    spec = {"type": "chain", "steps": SWARM}
    assert choose_mode(compile_workflow(parse_spec(spec))) == (
        Mode.CHAIN,
        "the spec asks for chain",
    )
