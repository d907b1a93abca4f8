"""The JSON Schema of the spec format (engine.spec_schema, issue 13 item 7): generated from
the models, shipped as schema/tutti-spec.schema.json, and in agreement with the models:
it accepts every spec they accept (the examples, the seed's, the README's, the shorthand
forms their validators allow) and rejects what they reject for its shape."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from tests.engine.test_spec import SEED_CHAIN_YAML
from tests.seed import SEED_CHAIN, SEED_SWARM
from tutti_mcp.engine.errors import SpecError
from tutti_mcp.engine.modes.sugar import TOP_LEVEL
from tutti_mcp.engine.spec import parse_spec
from tutti_mcp.engine.spec_schema import REFRESH, SCHEMA_PATH, schema_text, spec_json_schema
from tutti_mcp.engine.spec_source import DEFAULT_LIMITS, parse_spec_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = spec_json_schema()
# The YAML language server (VS Code, JetBrains, Neovim) validates with draft-07: the schema
# must say the same there as under its own dialect, 2020-12.
VALIDATORS = {"2020-12": Draft202012Validator(SCHEMA), "draft-07": Draft7Validator(SCHEMA)}
# The keywords draft-07 knows, plus 2020-12's `$defs` (reached by JSON pointer in both).
DRAFT7_KEYWORDS = {
    *("$schema", "$ref", "$defs", "title", "description", "default", "type", "enum"),
    *("properties", "additionalProperties", "required", "items", "minItems", "anyOf"),
    *("minLength", "minProperties"),
    *("not", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
}


def errors(data: Any) -> dict[str, list[str]]:
    """Each validator's error messages for `data` (empty lists: valid)."""
    return {name: [e.message for e in v.iter_errors(data)] for name, v in VALIDATORS.items()}


def models_accept(data: Any) -> bool:
    try:
        parse_spec(data)
    except SpecError:
        return False
    return True


def readme_specs() -> Iterator[Any]:
    """Every JSON or YAML block of the README that is a spec (a mapping with `steps`, or a
    swarm written at the top level)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```(?:json|yaml)\n(.*?)^```$", text, re.DOTALL | re.MULTILINE):
        data = parse_spec_text(block, "README.md", DEFAULT_LIMITS)
        if isinstance(data, dict) and ("steps" in data or data.get("type") in TOP_LEVEL):
            yield data


ONE_AGENT = {"solo": {"role": "Does it all"}}


def pipeline_step(source: Any, stages: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    """A chain whose one step is a pipeline (the root's own checks say nothing of it)."""
    return {"steps": [{"id": "p", "pipeline": {"source": source, "stages": stages, **more}}]}


EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".json", ".yaml"))
ACCEPTED: dict[str, Any] = {
    **{
        f"examples/{p.name}": parse_spec_text(p.read_text("utf-8"), p.name, DEFAULT_LIMITS)
        for p in EXAMPLES
    },
    "the seed's chain (JSON)": SEED_CHAIN,
    "the seed's chain (YAML)": parse_spec_text(SEED_CHAIN_YAML, "seed", DEFAULT_LIMITS),
    **{f"README spec {i}": data for i, data in enumerate(readme_specs())},
    # forms that validators accept and field types alone do not say
    "inputs shorthand": {
        "inputs": {"path": ".", "n": 3, "flag": True, "list": [1], "none": None},
        "steps": [{"id": "a", "args": "${inputs.path}"}],
    },
    "memory as a flag or a scope": {
        "steps": [
            {"id": "a", "prompt": "x", "memory": True},
            {"id": "b", "prompt": "x", "memory": False},
            {"id": "c", "prompt": "x", "memory": "project:/home/me/repo"},
        ]
    },
    "the seed's swarm example": SEED_SWARM,
    "a top-level swarm with its task as text and the workflow's fields": {
        "name": "review",
        "type": "swarm",
        "topology": "star",
        "agents": {"hub": {"role": "Aggregates"}, "a": {"role": "Answers", "run": "client"}},
        "coordination": {"conflict_resolution": "vote", "rule": "weighted"},
        "task": "Review ${inputs.path}",
        "inputs": {"path": "."},
        "max_rounds": 2,
        "budget": {"max_cost_usd": 1},
    },
    "a one-agent pipeline or mesh": {"type": "swarm", "topology": "pipeline", "agents": ONE_AGENT},
    "a swarm step in a chain": {
        "steps": [
            {"id": "find", "prompt": "List the risks"},
            {
                "id": "review",
                "swarm": {"topology": "mesh", "agents": ONE_AGENT, "task": "${find.output}"},
            },
        ]
    },
    "a top-level pipeline with the workflow's fields": {
        "name": "files",
        "type": "pipeline",
        "inputs": {"pattern": "*.md"},
        "source": {"glob": "${inputs.pattern}"},
        "stages": [
            {"id": "ask", "prompt": "Summarise ${item}", "batch": 10, "retries": 1},
            {"id": "row", "op": "json", "value": {"file": "${item}", "about": "${ask.output}"}},
        ],
        "buffer": 16,
        "ordered": False,
        "sink": {"memory": "/memories/summaries.jsonl", "scope": "workflow"},
    },
    "a pipeline step with the source and sink shorthands": {
        "steps": [
            {"id": "pre", "value": [1, 2]},
            {
                "id": "p",
                "pipeline": {
                    "source": "${pre.output}",
                    "stages": [{"id": "s", "op": "pass"}],
                    "sink": "output",
                },
            },
            {"id": "q", "pipeline": {"source": [3], "stages": [{"id": "s", "args": "x"}]}},
        ]
    },
    "every command, with and without arguments": {
        "steps": [
            {"id": "q", "command": "/query", "args": "x"},
            {"id": "b", "command": "/bash ls -l"},
            {"id": "w", "command": "  /wait", "value": 1, "args": "done"},
        ]
    },
}
REJECTED: dict[str, Any] = {
    "an unknown field": {"steps": [{"id": "a", "args": "x", "timout": 3}]},
    "no steps": {"steps": []},
    "steps missing": {"name": "w"},
    "an unknown mode": {"type": "chian", "steps": [{"id": "a"}]},
    "a step id with a dash": {"steps": [{"id": "my-step"}]},
    "an unknown command": {"steps": [{"id": "a", "command": "/qurey x"}]},
    "a command that only starts like a known one": {"steps": [{"id": "a", "command": "/tasks"}]},
    "an empty command": {"steps": [{"id": "a", "command": " "}]},
    "a timeout of the wrong type": {"steps": [{"id": "a", "timeout": [300]}]},
    "a negative retry count": {"steps": [{"id": "a", "retry": {"attempts": 0}}]},
    "an unknown input type": {"inputs": {"n": {"type": "int"}}, "steps": [{"id": "a"}]},
    "not a mapping": ["steps"],
    "a hierarchical swarm of one agent": {
        "type": "swarm",
        "agents": {"coordinator": SEED_SWARM["agents"]["coordinator"]},
    },
    "a star swarm step with only its hub": {
        "steps": [{"id": "s", "swarm": {"topology": "star", "agents": {"hub": {"role": "x"}}}}]
    },
    "an unknown topology": {**SEED_SWARM, "topology": "ring"},
    "a swarm without agents": {"type": "swarm", "topology": "mesh"},
    "swarm fields in a workflow with steps": {**SEED_SWARM, "steps": [{"id": "a"}]},
    "swarm fields in a chain": {**SEED_SWARM, "type": "chain"},
    "an agent that runs a shell": {
        "steps": [
            {"id": "s", "swarm": {"agents": {"a": {"role": "x", "run": "shell"}, **ONE_AGENT}}}
        ]
    },
    "a top-level pipeline without stages": {"type": "pipeline", "source": [1]},
    "a top-level pipeline without `type`": {"source": [1], "stages": [{"id": "s", "args": "x"}]},
    "pipeline fields in a workflow with steps": {
        "steps": [{"id": "a"}],
        "source": [1],
        "stages": [{"id": "s", "args": "x"}],
    },
    "pipeline fields in a swarm": {**SEED_SWARM, "source": [1]},
    "a pipeline source of no kind": pipeline_step({}, [{"id": "s", "args": "x"}]),
    "a stage id with a dash": pipeline_step({"items": [1]}, [{"id": "my-stage", "args": "x"}]),
    "a stage that is an approval gate": pipeline_step({"items": [1]}, [{"id": "s", "run": "gate"}]),
    "an unknown sink": pipeline_step({"items": [1]}, [{"id": "s", "args": "x"}], sink="stdout"),
    "an unknown field of an agent": {
        "type": "swarm",
        "topology": "mesh",
        "agents": {"a": {"role": "x", "modle": "opus"}},
    },
}


def test_the_shipped_schema_file_is_the_one_the_models_generate() -> None:
    shipped = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert shipped == schema_text(), (
        f"{SCHEMA_PATH} is out of date with the spec models; refresh it with `{REFRESH}`"
    )


def test_the_schema_is_a_valid_json_schema_that_names_its_dialect_and_format() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["title"] == "tutti workflow spec"
    # a workflow needs steps; the top-level swarm form needs `type: swarm` and agents instead,
    # the top-level pipeline form `type: pipeline`, a source and stages
    assert [form["required"] for form in SCHEMA["anyOf"]] == [
        ["steps"],
        ["type", "agents"],
        ["type", "source", "stages"],
    ]
    # descriptions the models carry reach the editor
    timeout = SCHEMA["$defs"]["Step"]["properties"]["timeout"]
    assert timeout["description"] == "seconds per attempt"


def keywords(node: Any, inside_properties: bool = False) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if not inside_properties:
                yield key
            if key in ("default", "enum"):  # values, not schemas
                continue
            yield from keywords(value, inside_properties=key in ("properties", "$defs"))
    elif isinstance(node, list):
        for item in node:
            yield from keywords(item)


def test_the_schema_uses_only_keywords_that_draft_07_editors_understand() -> None:
    assert set(keywords(SCHEMA)) - DRAFT7_KEYWORDS == set()


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_the_schema_accepts_each_spec_the_models_accept(name: str) -> None:
    data = ACCEPTED[name]
    assert models_accept(data), f"{name}: the models reject it"
    assert errors(data) == {"2020-12": [], "draft-07": []}


@pytest.mark.parametrize("name", list(REJECTED))
def test_the_schema_rejects_each_spec_the_models_reject_for_its_shape(name: str) -> None:
    data = REJECTED[name]
    assert not models_accept(data), f"{name}: the models accept it"
    found = errors(data)
    assert found["2020-12"] and found["draft-07"], found


def test_an_empty_command_is_a_problem_of_the_spec_not_a_crash() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"steps": [{"id": "a", "command": ""}]})
    assert [str(p) for p in info.value.problems] == [
        "steps[0] (a).command: unknown command ''; known commands: "
        "/bash, /json, /merge, /parse_json, /pass, /protocol, /query, /sh, /shell, /task, "
        "/template, /wait"
    ]


def test_the_examples_and_the_readme_are_all_checked() -> None:
    """The parametrisation above sees every example file and the README's specs."""
    assert {p.name for p in EXAMPLES} >= {
        "seed-chain.json",
        "repo-stats.yaml",
        "triage.yaml",
        "swarm-review.yaml",
    }
    assert len(list(readme_specs())) >= 3
    assert any("agents" in data for data in readme_specs())  # the README's swarm


def test_the_schema_text_is_indented_json_ending_with_a_newline() -> None:
    text = schema_text()
    assert text.endswith("}\n") and json.loads(text) == SCHEMA
