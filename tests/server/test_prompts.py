"""The prompts teach a spec format by example: the example must be a valid spec."""

from __future__ import annotations

import yaml

from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.server.prompts import SPEC_FORMAT


def test_the_spec_example_in_the_prompts_compiles() -> None:
    example = SPEC_FORMAT.split("\n", 1)[1].split("Other step kinds")[0]
    wf = compile_workflow(parse_spec(yaml.safe_load(example)))
    assert wf.order == ["research", "draft", "check"]
    assert wf.steps["check"].executor is ExecutorKind.PROMPT
    assert wf.deps["check"] == ("draft",)  # implicit: its condition and args read draft
