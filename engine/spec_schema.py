"""The JSON Schema of the spec format, generated from the models in engine.spec, for editors
(`# yaml-language-server: $schema=...`) and `tutti schema`.

pydantic sees the fields' types; what a `mode="before"` validator or a field validator
accepts or refuses is code it cannot see, and neither does it see the top-level forms
(`type: swarm` with `agents`, `type: pipeline` with `source` and `stages`, no `steps`,
which engine.modes.sugar turns into a workflow of that one step before the models read
it). Those forms are added here from the same
constants the validators use, so the schema accepts every spec the models accept (and
flags a malformed step id or an unknown command as the models do). Whole-workflow checks
(unknown references, cycles) are `tutti plan`'s: a schema cannot express them.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import CoreSchema

from tutti_mcp.engine.modes.pipeline.spec import STAGE_ID
from tutti_mcp.engine.modes.sugar import TOP_LEVEL
from tutti_mcp.engine.modes.swarm.spec import AGENT_RUNS, Topology
from tutti_mcp.engine.spec import KNOWN_COMMANDS, STEP_ID_RE, ExecutorKind, Mode, WorkflowSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "tutti workflow spec"
DESCRIPTION = (
    "A tutti workflow (JSON or YAML): its steps, how each runs and what it depends on; or a "
    "swarm written at the top level (`type: swarm`, `agents`, `topology`, `coordination`, "
    "`task`), or a pipeline (`type: pipeline`, `source`, `stages`, `buffer`, `ordered`, "
    "`sink`), each a workflow of that one step. Generated from tutti's models by `tutti "
    "schema`. Unknown references and dependency cycles are checked by `tutti plan` and "
    "`workflow_plan`, not by this schema."
)
SCHEMA_PATH = "schema/tutti-spec.schema.json"  # the shipped copy, relative to the repository
REFRESH = f"uv run tutti schema --output {SCHEMA_PATH}"
SWARM_KEYS = sorted(TOP_LEVEL[Mode.SWARM.value][1])  # the top-level swarm form's own fields
PIPELINE_KEYS = sorted(TOP_LEVEL[Mode.PIPELINE.value][1])  # and the pipeline form's
# SwarmSpec._roster: these topologies need a lead (coordinator, hub) and one agent more
LEAD_TOPOLOGIES = (Topology.HIERARCHICAL, Topology.STAR)


class _Generator(GenerateJsonSchema):
    """pydantic's generator without the titles it makes up from field names ("Backoff S"):
    an editor shows the field's name and description anyway."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def generate(self, schema: CoreSchema, mode: Any = "validation") -> dict[str, Any]:
        return dict(super().generate(schema, mode))


def _prop(schema: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    """The schema of `model.field` (WorkflowSpec's are the root's); a clear error when the
    models no longer have it, so a renamed field is noticed here, not silently left out."""
    # a spec can hold specs (`workflow:` steps), so WorkflowSpec may be a $def the root refers to
    defs = schema.get("$defs", {})
    where = defs[model] if model in defs or model != WorkflowSpec.__name__ else schema
    try:
        prop: dict[str, Any] = where["properties"][field]
    except KeyError:
        raise KeyError(
            f"engine.spec_schema adjusts {model}.{field}, which the spec models no longer "
            "have: update engine/spec_schema.py"
        ) from None
    return prop


def _command_pattern() -> str:
    """A command's first word is one of KNOWN_COMMANDS (Step._known_command splits on
    whitespace, so leading whitespace is allowed)."""
    alternatives = "|".join(re.escape(c) for c in KNOWN_COMMANDS)
    return rf"^\s*(?:{alternatives})(?:\s|$)"


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a workflow spec."""
    body = WorkflowSpec.model_json_schema(schema_generator=_Generator)
    # `inputs: {path: "."}` is shorthand for `{path: {default: "."}}` (_input_shorthand):
    # a value that is not a mapping is a default
    inputs = _prop(body, "WorkflowSpec", "inputs")
    inputs["additionalProperties"] = {
        "anyOf": [inputs["additionalProperties"], {"not": {"type": "object"}}]
    }
    # `memory: true` means "workflow", `false` none (Step._memory_form)
    memory = _prop(body, "Step", "memory")
    memory["anyOf"] = [{"type": "boolean"}, *memory["anyOf"]]
    # `foreach: "${find.output}"` (or a list) is `foreach: {items: ...}` (_foreach_shorthand)
    foreach = _prop(body, "Step", "foreach")
    foreach["anyOf"] = [{"type": "string"}, {"type": "array"}, *foreach["anyOf"]]
    _prop(body, "Step", "id")["pattern"] = STEP_ID_RE.pattern
    command = _prop(body, "Step", "command")
    for choice in command["anyOf"]:
        if choice.get("type") == "string":
            choice["pattern"] = _command_pattern()
    # an agent runs on a model (Agent._model_run)
    run = _prop(body, "Agent", "run")
    run["anyOf"] = [{"enum": [k.value for k in AGENT_RUNS]}, {"type": "null"}]
    swarm = body["$defs"]["SwarmSpec"]
    swarm["anyOf"] = _lead_and_others()
    pipeline = _pipeline(body)
    ref = body.pop("$ref", None)
    if ref is not None:  # the root is the spec itself (its $def stays, for child specs)
        body = {**copy.deepcopy(body["$defs"][ref.rsplit("/", 1)[1]]), **body}
    body.pop("title", None)
    body.pop("description", None)
    _top_level_forms(body, swarm, pipeline)
    return {"$schema": DIALECT, "title": TITLE, "description": DESCRIPTION, **body}


def _pipeline(body: dict[str, Any]) -> dict[str, Any]:
    """A pipeline's shorthands and checks (engine.modes.pipeline.spec): `source` as a list
    or a template is `{items: ...}`, `sink: output` is `{output: true}`, a source names
    one of its kinds, a stage id is a template name and a stage is no approval gate."""
    source = _prop(body, "PipelineSpec", "source")
    _prop(body, "PipelineSpec", "source").update(
        {"anyOf": [{"type": "string"}, {"type": "array"}, {"$ref": source.pop("$ref")}]}
    )
    sink = _prop(body, "PipelineSpec", "sink")
    sink["anyOf"] = [{"enum": ["output"]}, {"$ref": sink.pop("$ref")}]
    kinds = body["$defs"]["Source"]
    kinds["anyOf"] = [{"required": [k]} for k in kinds["properties"]]
    _prop(body, "Stage", "id")["pattern"] = STAGE_ID.pattern
    _prop(body, "Stage", "run")["anyOf"] = [
        {"enum": [k.value for k in ExecutorKind if k is not ExecutorKind.GATE]},
        {"type": "null"},
    ]
    pipeline: dict[str, Any] = body["$defs"]["PipelineSpec"]
    return pipeline


def _lead_and_others() -> list[dict[str, Any]]:
    """A hierarchical or star swarm (the default topology is hierarchical) has two agents at
    least; a mesh or pipeline may have one."""
    others = [t.value for t in Topology if t not in LEAD_TOPOLOGIES]
    return [
        {"required": ["topology"], "properties": {"topology": {"enum": others}}},
        {"properties": {"agents": {"minProperties": 2}}},
    ]


def _top_level_forms(root: dict[str, Any], swarm: dict[str, Any], pipeline: dict[str, Any]) -> None:
    """The root accepts a workflow (`steps`, none of the swarm's or the pipeline's fields),
    the top-level swarm form (`type: swarm` and `agents`, no `steps`) or the top-level
    pipeline form (`type: pipeline`, `source` and `stages`, no `steps`; engine.modes.sugar).
    The fields of all three stay in the root's `properties`, so an editor completes and
    checks each at its place; only which fields are required differs."""
    for form, keys in ((swarm, SWARM_KEYS), (pipeline, PIPELINE_KEYS)):
        for key, prop in form["properties"].items():
            if key in keys:
                root["properties"][key] = copy.deepcopy(prop)
    if root.pop("required", None) != ["steps"]:
        raise KeyError(
            "engine.spec_schema expects WorkflowSpec to require `steps` alone, and it no "
            "longer does: update _top_level_forms in engine/spec_schema.py"
        )

    def none_of(*keys: str) -> dict[str, Any]:
        return {"not": {"anyOf": [{"required": [key]} for key in keys]}}

    root["anyOf"] = [
        {"required": ["steps"], **none_of(*SWARM_KEYS, *PIPELINE_KEYS)},
        {
            "required": ["type", "agents"],
            "properties": {"type": {"enum": [Mode.SWARM.value]}},
            **none_of("steps", *PIPELINE_KEYS),
            "anyOf": _lead_and_others(),
        },
        {
            "required": ["type", "source", "stages"],
            "properties": {"type": {"enum": [Mode.PIPELINE.value]}},
            **none_of("steps", *SWARM_KEYS),
        },
    ]


def schema_text() -> str:
    """The schema as the shipped file holds it: indented JSON, ending with a newline."""
    return json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n"
