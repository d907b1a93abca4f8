"""Workflow specs: pydantic models, loading from JSON or YAML, and the seed's command forms.

A spec is data. Semantic checks that need the whole workflow (unknown references,
cycles) live in `engine.validate`; this module only checks the shape of each field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.gate_spec import gate_field_problem
from tutti_mcp.engine.modes.pipeline.spec import PipelineSpec
from tutti_mcp.engine.modes.sugar import sugared_loc, unsugar
from tutti_mcp.engine.modes.swarm.spec import SwarmSpec
from tutti_mcp.engine.spec_files import decode_spec_bytes, read_spec_bytes
from tutti_mcp.engine.spec_foreach import ForEach
from tutti_mcp.engine.spec_memory import MEMORY_FORMS, memory_form
from tutti_mcp.engine.spec_parts import MODEL_KINDS as MODEL_KINDS
from tutti_mcp.engine.spec_parts import Budget as Budget
from tutti_mcp.engine.spec_parts import BuiltinOp as BuiltinOp
from tutti_mcp.engine.spec_parts import Defaults as Defaults
from tutti_mcp.engine.spec_parts import ExecutorKind as ExecutorKind
from tutti_mcp.engine.spec_parts import FailurePolicy as FailurePolicy
from tutti_mcp.engine.spec_parts import Mode as Mode
from tutti_mcp.engine.spec_parts import Optimization as Optimization
from tutti_mcp.engine.spec_parts import RetryPolicy as RetryPolicy
from tutti_mcp.engine.spec_parts import SpecModel as _Model
from tutti_mcp.engine.spec_parts import ThinkingMode as ThinkingMode
from tutti_mcp.engine.spec_parts import Trigger as Trigger
from tutti_mcp.engine.spec_parts import TruncationPolicy as TruncationPolicy
from tutti_mcp.engine.spec_source import DEFAULT_LIMITS, SpecLimits, check_data, parse_spec_text
from tutti_mcp.engine.spec_strings import (
    readable_loc,
    schema_problem,
    split_keeping_templates,
    strings_in,
)
from tutti_mcp.engine.toolbox.spec import TOOLS_HELP, parse_tools, tools_problem, with_memory_tool

STEP_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Names templates read as something else (`${self}` is jinja2's template object).
_WORDS = ("inputs", "steps", "run", "loop", "true", "false", "none", "null", "self")
RESERVED_NAMES = frozenset((*_WORDS, "item", "item_index"))


# The seed's slash commands. Prompt commands are named prompt templates (engine.prompts).
PROMPT_COMMANDS = frozenset({"/query", "/task", "/protocol"})
SHELL_COMMANDS = frozenset({"/bash", "/sh", "/shell"})
BUILTIN_COMMANDS = {f"/{op.value}": op for op in BuiltinOp}
KNOWN_COMMANDS = sorted(PROMPT_COMMANDS | SHELL_COMMANDS | set(BUILTIN_COMMANDS))


class InputSpec(_Model):
    type: Literal["string", "integer", "number", "boolean", "json"] = "string"
    default: Any = None
    required: bool = False
    description: str = ""


class Step(_Model):
    id: str
    run: ExecutorKind | None = Field(None, description="executor; inferred when omitted")
    command: str | None = Field(None, description="seed form: /query, /task, /protocol, /bash ...")
    args: str | None = None
    # shell
    argv: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    # prompt / client / sampling
    prompt: str | None = None
    system: str | None = None
    model: str | None = None
    thinking: ThinkingMode | None = None
    max_tokens: int | None = Field(None, ge=1, le=128_000)
    difficulty: Literal["low", "medium", "high"] | None = None
    memory: str | None = Field(
        None, description=f"give the model the memory tool, in a scope: {MEMORY_FORMS}"
    )
    # builtin
    op: BuiltinOp | None = None
    value: Any = None
    context: list[str] = Field(
        default_factory=list,
        description="documents (templates) for the system prompt, before the step's own part; "
        "steps that share them share a cacheable prompt prefix",
    )
    cache: bool = Field(
        True, description="send a long shared prompt prefix as a cacheable block (prompt steps)"
    )
    on_truncation: TruncationPolicy = Field(
        TruncationPolicy.FAIL,
        description="an answer cut off at max_tokens: fail the step, or accept it (text only)",
    )
    # shape of the output: text as produced, or parsed as JSON (validated by `json_schema`)
    output: Literal["text", "json"] = "text"
    json_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the output must match (with `output: json`)"
    )
    # control
    foreach: ForEach | None = Field(
        None, description="run this step once per item (a template, or {items|glob|lines})"
    )
    loop: Loop | None = Field(
        None, description="run `loop.steps` again and again until `loop.until` holds"
    )
    swarm: SwarmSpec | None = Field(None, description="agents in a topology (swarm mode)")
    tools: list[str] = Field(default_factory=list, description=TOOLS_HELP)
    pipeline: PipelineSpec | None = Field(None, description="items streamed through stages")
    workflow: str | WorkflowSpec | None = Field(
        None, description="run a workflow (a spec file in the workspace, or inline) as a child run"
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="a `workflow` step's inputs to its child (templates)"
    )
    depends_on: list[str] = Field(default_factory=list)
    when: str | None = None
    trigger: Trigger = Trigger.ALL_SUCCEEDED
    timeout: float | None = Field(None, gt=0, le=86_400, description="seconds per attempt")
    retry: RetryPolicy | None = None
    on_failure: FailurePolicy = FailurePolicy.FAIL
    fallback: str | None = None
    default: Any = None
    estimate_s: float | None = Field(None, ge=0, description="expected duration, for planning")
    idempotency_key: str | None = None
    description: str = ""
    # approval gate (engine/gates.py): the run waits for a person's yes or no; `timeout`
    # is then how long to wait for it (unanswered: rejected)
    approve: str | None = Field(None, description="a gate: the question to put to the user")
    preview: str | None = Field(None, description="a gate: what to show with the question")
    on_reject: str | None = Field(
        None,
        description='a gate, when rejected or unanswered in time: "fail" (the default) or '
        "the id of a step to run instead",
    )

    # if block: `if` with `then` (and `else`) steps instead of an executor; engine.blocks
    # turns it into guarded steps before the graph is built
    if_: str | None = Field(
        None, alias="if", description="a block's condition; true runs `then`, false `else`"
    )
    then: list[Step] | None = Field(None, min_length=1, description="steps run when `if` holds")
    else_: list[Step] | None = Field(
        None, alias="else", min_length=1, description="steps run when `if` does not hold"
    )

    model_config = ConfigDict(serialize_by_alias=True)  # stored specs say `if` and `else`

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not STEP_ID_RE.match(v):
            raise ValueError(
                f"step id {v!r} must start with a letter or _ and use only letters, digits and _ "
                "(it is used in templates as ${" + "id.output}), at most 64 characters"
            )
        if v.lower() in RESERVED_NAMES:
            raise ValueError(f"step id {v!r} is reserved; choose another name")
        return v

    @field_validator("command")
    @classmethod
    def _known_command(cls, v: str | None) -> str | None:
        if v is not None and (v.split() or [""])[0] not in KNOWN_COMMANDS:  # "" has no word
            raise ValueError(f"unknown command {v!r}; known commands: {', '.join(KNOWN_COMMANDS)}")
        return v

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_form(cls, v: Any) -> str | None:
        return memory_form(v)

    @field_validator("tools")
    @classmethod
    def _tool_forms(cls, v: list[str]) -> list[str]:
        return parse_tools(v)

    @model_validator(mode="before")
    @classmethod
    def _memory_tool(cls, data: Any) -> Any:
        return with_memory_tool(data)  # `tools: [memory]` alone means `memory: workflow`

    @model_validator(mode="after")
    def _memory_on_model_steps(self) -> Step:
        if problem := tools_problem(self.id, self.executor, self.swarm is not None, self.tools):
            raise ValueError(problem)
        if self.memory and self.executor not in MODEL_KINDS:
            raise ValueError(
                f"step {self.id!r} runs on {self.executor.value}, which has no model to give "
                "memory to: `memory` is for model steps (prompt, client, sampling)"
            )
        return self

    @model_validator(mode="after")
    def _output_fields(self) -> Step:
        if self.context and self.executor not in MODEL_KINDS:
            raise ValueError(
                f"step {self.id!r} runs on {self.executor.value}: `context` documents are for "
                "model steps (prompt, client, sampling)"
            )
        if self.json_schema is not None:
            if self.output != "json":
                raise ValueError("`json_schema` needs `output: json`; add it, or drop the schema")
            problem = schema_problem(self.json_schema)
            if problem:
                raise ValueError(f"`json_schema` is not a valid JSON Schema: {problem}")
        if self.output == "json" and self.on_truncation is TruncationPolicy.ACCEPT:
            raise ValueError(
                "`on_truncation: accept` cannot apply to `output: json`: JSON cut off at "
                "max_tokens does not parse; raise `max_tokens` instead"
            )
        return self

    @field_validator("foreach", mode="before")
    @classmethod
    def _foreach_shorthand(cls, v: Any) -> Any:
        return {"items": v} if isinstance(v, str | list) else v

    @model_validator(mode="after")
    def _loop_shape(self) -> Step:
        if self.inputs and self.workflow is None:
            raise ValueError("`inputs` are what a `workflow` step gives its child; add `workflow`")
        what = "loop" if self.loop is not None else "workflow" if self.workflow else None
        what = "swarm" if self.swarm is not None else what
        what = "pipeline" if self.pipeline is not None else what
        if what is None:
            return self
        own = [f for f in LOOP_EXCLUDES if getattr(self, f) not in (None, [], {})]
        if what == "workflow":  # one child run per item is a fan-out of workflows
            own = [f for f in own if f != "foreach"] + (["loop"] if self.loop else [])
        if what in ("swarm", "pipeline"):  # what runs is its agents' turns, its stages
            mode = ("swarm",) if what == "pipeline" else ()
            own = [f for f in (*own, "loop", "workflow", "memory", *mode) if getattr(self, f)]
            own += ["system"] if self.system else []
        if own:
            runs = {"loop": "its `loop.steps`", "swarm": "its agents' turns"}.get(
                what, "its stages" if what == "pipeline" else "its child workflow"
            )
            whose = {"swarm": "its agents", "pipeline": "its stages"}.get(what)
            raise ValueError(
                f"a {what} step runs {runs}; it cannot have {', '.join(own)} of its own "
                + (f"(give them to {whose})" if whose else f"(move them into a step of the {what})")
            )
        return self

    @model_validator(mode="after")
    def _foreach_policy(self) -> Step:
        if self.foreach is not None and self.on_failure is FailurePolicy.FALLBACK:
            raise ValueError(
                "a `foreach` step's instances cannot have a fallback step; use on_failure "
                "'continue' (collect the errors), 'degrade' (use `default`) or 'fail'"
            )
        return self

    @model_validator(mode="after")
    def _policy_fields(self) -> Step:
        if self.on_failure is FailurePolicy.FALLBACK and not self.fallback:
            raise ValueError("on_failure 'fallback' needs a `fallback` step id")
        if self.fallback and self.on_failure is not FailurePolicy.FALLBACK:
            raise ValueError("`fallback` is set but on_failure is not 'fallback'")
        return self

    @model_validator(mode="after")
    def _gate_fields(self) -> Step:
        problem = gate_field_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    # -- derived views -------------------------------------------------------------------
    @property
    def executor(self) -> ExecutorKind:
        """The executor this step runs on (explicit `run`, else inferred from its fields)."""
        if self.approve is not None:
            return ExecutorKind.GATE
        if self.swarm is not None:  # its agents' turns are model steps
            return self.run or ExecutorKind.PROMPT
        if self.pipeline is not None:  # its stages run on theirs (engine.modes.pipeline)
            return ExecutorKind.BUILTIN
        if self.run is not None:
            return self.run
        if self.command:
            head = self.command.split()[0]
            if head in SHELL_COMMANDS:
                return ExecutorKind.SHELL
            if head in BUILTIN_COMMANDS:
                return ExecutorKind.BUILTIN
            return ExecutorKind.PROMPT
        if self.argv is not None:
            return ExecutorKind.SHELL
        if self.prompt is not None:
            return ExecutorKind.PROMPT
        return ExecutorKind.BUILTIN

    @property
    def builtin_op(self) -> BuiltinOp:
        if self.op is not None:
            return self.op
        if self.command and self.command.split()[0] in BUILTIN_COMMANDS:
            return BUILTIN_COMMANDS[self.command.split()[0]]
        if self.value is not None:
            return BuiltinOp.JSON
        return BuiltinOp.TEMPLATE if self.args is not None else BuiltinOp.PASS

    @property
    def shell_argv(self) -> list[str]:
        """The program and its arguments (templates unrendered): `argv`, or `/bash ARGS` split."""
        if self.argv is not None:
            return list(self.argv)
        words = split_keeping_templates(self.command or "")[1:]
        if self.args:
            words += split_keeping_templates(self.args)
        return words

    def templated_strings(self) -> list[tuple[str, str]]:
        """(field, text) for every field rendered as a template at run time."""
        out: list[tuple[str, str]] = []
        for name in ("args", "prompt", "system", "idempotency_key", "cwd", "approve", "preview"):
            text = getattr(self, name)
            if text is not None:
                out.append((name, text))
        out += [(f"context[{i}]", doc) for i, doc in enumerate(self.context)]
        if self.argv is not None:
            out += [(f"argv[{i}]", a) for i, a in enumerate(self.argv)]
        out += [(f"env.{k}", v) for k, v in self.env.items()]
        if self.value is not None:
            out += [(f"value{p}", s) for p, s in strings_in(self.value, "")]
        fe = self.foreach
        if fe is not None:
            if fe.items is not None:
                out += [(f"foreach.items{p}", s) for p, s in strings_in(fe.items, "")]
            out += [(f"foreach.{n}", t) for n in ("lines", "key") if (t := getattr(fe, n))]
        out += [(f"inputs.{k}{p}", t) for k, v in self.inputs.items() for p, t in strings_in(v, "")]
        if self.swarm is not None:
            out.append(("swarm.task", self.swarm.task))
        out += self.pipeline.templated_strings() if self.pipeline is not None else []
        return out


def every_step(steps: Sequence[Step]) -> Iterator[Step]:
    """Every step, those of if blocks, loops and inline child workflows too (a block, loop
    or `workflow` step before its steps)."""
    for s in steps:
        yield s
        child = s.workflow.steps if isinstance(s.workflow, WorkflowSpec) else None
        for inner in (s.then, s.else_, s.loop.steps if s.loop is not None else None, child):
            if inner:
                yield from every_step(inner)


LOOP_EXCLUDES = ("run", "command", "args", "argv", "prompt", "value", "op", "foreach", "env")


class Loop(_Model):
    """A bounded loop: `steps` run as one iteration, again while `until` does not hold,
    at most `max_iterations` times. Each iteration's steps are durable (`revise#3`)."""

    steps: list[Step] = Field(min_length=1, description="one iteration's steps")
    until: str = Field(
        description="an expression read after each iteration (its steps by name, "
        "${loop.iteration}); the loop ends once it is true"
    )
    max_iterations: int = Field(ge=1, le=100, description="required: no loop is unbounded")


class WorkflowSpec(_Model):
    name: str = "workflow"
    type: Mode = Mode.AUTO
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    defaults: Defaults = Defaults()
    optimization: Optimization = Optimization()
    max_concurrency: int = Field(16, ge=1, le=1024)
    budget: Budget = Budget()
    steps: list[Step] = Field(min_length=1)

    @field_validator("inputs", mode="before")
    @classmethod
    def _input_shorthand(cls, v: Any) -> Any:
        # `inputs: {path: "."}` is shorthand for `inputs: {path: {default: "."}}`.
        if isinstance(v, dict):
            return {k: (x if isinstance(x, dict) else {"default": x}) for k, x in v.items()}
        return v

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


Step.model_rebuild()  # `loop` and `workflow` name models defined after Step


def parse_spec(
    data: Any, limits: SpecLimits = DEFAULT_LIMITS, source: str = "spec"
) -> WorkflowSpec:
    """Build a spec from already-parsed data (a spec given as an object): held to the same
    limits as spec text; shape errors name the exact field."""
    check_data(data, source, limits)
    return _build(data, source)


def _build(data: Any, source: str) -> WorkflowSpec:
    if not isinstance(data, dict):
        got = type(data).__name__
        raise SpecError([Problem(source, f"a workflow spec is a mapping, got {got}")])
    data, moved = unsugar(data)
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            loc = sugared_loc(err["loc"], moved)
            where = readable_loc(loc, data if moved is None else data["steps"][0][moved[2]])
            problems.append(Problem(where or source, msg))
        raise SpecError(problems) from None


def load_spec_text(
    text: str, source: str = "<spec>", limits: SpecLimits = DEFAULT_LIMITS
) -> WorkflowSpec:
    """Parse JSON or YAML text; errors name `source`, and never quote the text."""
    return _build(parse_spec_text(text, source, limits), source)


def load_spec_file(
    path: str | Path,
    limits: SpecLimits = DEFAULT_LIMITS,
    source: str | None = None,
    *,
    follow_symlinks: bool = True,
) -> WorkflowSpec:
    """Read and parse a spec file (regular, UTF-8 or with a BOM, within the limits); errors
    name it as `source` (default: the path)."""
    source = source or str(path)
    data = read_spec_bytes(Path(path), limits, source, follow_symlinks=follow_symlinks)
    text = decode_spec_bytes(data, source)
    return load_spec_text(text, source, limits)
