"""Workflow specs: pydantic models, loading from JSON or YAML, and the seed's command forms.

A spec is data. Semantic checks that need the whole workflow (unknown references,
cycles) live in `engine.validate`; this module only checks the shape of each field.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.spec_files import decode_spec_bytes, read_spec_bytes
from tutti_mcp.engine.spec_source import DEFAULT_LIMITS, SpecLimits, check_data, parse_spec_text
from tutti_mcp.engine.spec_strings import schema_problem, split_keeping_templates, strings_in
from tutti_mcp.memory.files.paths import SCOPE_KINDS, MemoryFileError, parse_scope

STEP_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Names templates read as something else (`${self}` is jinja2's template object).
RESERVED_NAMES = frozenset(
    {"inputs", "steps", "run", "loop", "true", "false", "none", "null", "self"}
)


class Mode(StrEnum):
    AUTO = "auto"
    CHAIN = "chain"
    FLOW = "flow"
    SWARM = "swarm"
    PIPELINE = "pipeline"


class ExecutorKind(StrEnum):
    BUILTIN = "builtin"
    SHELL = "shell"
    PROMPT = "prompt"
    CLIENT = "client"
    SAMPLING = "sampling"


MODEL_KINDS = frozenset({ExecutorKind.PROMPT, ExecutorKind.CLIENT, ExecutorKind.SAMPLING})


class ThinkingMode(StrEnum):
    INSTANT = "instant"
    STANDARD = "standard"
    EXTENDED = "extended"
    AUTO = "auto"


class FailurePolicy(StrEnum):
    FAIL = "fail"  # the run fails; no new steps start
    CONTINUE = "continue"  # the step is optional: dependents that need it are skipped
    FALLBACK = "fallback"  # run the step named in `fallback`; its output stands in
    DEGRADE = "degrade"  # use `default` as the output and go on; the run is marked partial


class TruncationPolicy(StrEnum):
    """What a model answer cut off at `max_tokens` does to its step."""

    FAIL = "fail"  # the step fails, saying so: a cut-off answer rarely serves what follows
    ACCEPT = "accept"  # the cut-off text is the output, recorded as truncated


class Trigger(StrEnum):
    ALL_SUCCEEDED = "all_succeeded"  # run only if every dependency produced an output
    ALL_DONE = "all_done"  # run once every dependency is finished, whatever its outcome


class BuiltinOp(StrEnum):
    TEMPLATE = "template"  # render `args` (a template) to text
    JSON = "json"  # evaluate `value` (JSON whose strings are templates) to a JSON value
    PASS = "pass"  # the output of the only dependency, or `value`
    MERGE = "merge"  # {dep_id: output} of all dependencies
    PARSE_JSON = "parse_json"  # parse rendered `args` as JSON
    WAIT = "wait"  # wait `value` seconds, then output `args` rendered (timers, pacing)


# The seed's slash commands. Prompt commands are named prompt templates (engine.prompts).
PROMPT_COMMANDS = frozenset({"/query", "/task", "/protocol"})
SHELL_COMMANDS = frozenset({"/bash", "/sh", "/shell"})
BUILTIN_COMMANDS = {f"/{op.value}": op for op in BuiltinOp}
KNOWN_COMMANDS = sorted(PROMPT_COMMANDS | SHELL_COMMANDS | set(BUILTIN_COMMANDS))

# `memory:` keywords, resolved per run by engine.agent_memory; `true` means "workflow".
MEMORY_KEYWORDS = ("workflow", "global", "project")
MEMORY_FORMS = 'true, false, "workflow", "global", "project", "project:<key>" or "workflow:<name>"'


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Model):
    attempts: int = Field(1, ge=1, le=20, description="total attempts, the first included")
    backoff_s: float = Field(1.0, ge=0, le=600, description="delay before the 2nd attempt")
    max_backoff_s: float = Field(60.0, ge=0, le=3600)
    jitter: bool = True

    def delay(self, failed_attempt: int, rand: float) -> float:
        """Exponential backoff with full jitter; `rand` in [0, 1)."""
        base: float = min(self.max_backoff_s, self.backoff_s * 2.0 ** (failed_attempt - 1))
        return base * rand if self.jitter else base


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
        if v is None or v is False:
            return None
        if v is True:
            return "workflow"
        if isinstance(v, str) and v in MEMORY_KEYWORDS:
            return v
        if isinstance(v, str) and v.partition(":")[0] in SCOPE_KINDS:
            try:
                return parse_scope(v)
            except MemoryFileError as exc:
                raise ValueError(f"`memory` {exc}") from None
        raise ValueError(f"`memory` must be {MEMORY_FORMS}; got {v!r}")

    @model_validator(mode="after")
    def _memory_on_model_steps(self) -> Step:
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

    @model_validator(mode="after")
    def _policy_fields(self) -> Step:
        if self.on_failure is FailurePolicy.FALLBACK and not self.fallback:
            raise ValueError("on_failure 'fallback' needs a `fallback` step id")
        if self.fallback and self.on_failure is not FailurePolicy.FALLBACK:
            raise ValueError("`fallback` is set but on_failure is not 'fallback'")
        return self

    # -- derived views -------------------------------------------------------------------
    @property
    def executor(self) -> ExecutorKind:
        """The executor this step runs on (explicit `run`, else inferred from its fields)."""
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
        for name in ("args", "prompt", "system", "idempotency_key", "cwd"):
            text = getattr(self, name)
            if text is not None:
                out.append((name, text))
        out += [(f"context[{i}]", doc) for i, doc in enumerate(self.context)]
        if self.argv is not None:
            out += [(f"argv[{i}]", a) for i, a in enumerate(self.argv)]
        out += [(f"env.{k}", v) for k, v in self.env.items()]
        if self.value is not None:
            out += [(f"value{p}", s) for p, s in strings_in(self.value, "")]
        return out


class Defaults(_Model):
    model: str | None = None
    thinking: ThinkingMode | None = None
    timeout: float = Field(300.0, gt=0, le=86_400)
    retry: RetryPolicy = RetryPolicy()
    model_executor: ExecutorKind | None = Field(
        None, description="where model steps run when a step does not say: prompt, client, sampling"
    )

    @field_validator("model_executor")
    @classmethod
    def _model_executor(cls, v: ExecutorKind | None) -> ExecutorKind | None:
        if v is not None and v not in MODEL_KINDS:
            raise ValueError("model steps run on prompt, client or sampling")
        return v


class Optimization(_Model):
    """The seed's optimisation switches; all on by default and honoured where they apply."""

    parallel_where_possible: bool = True
    adaptive_thinking: bool = True
    state_persistence: bool = True


class Budget(_Model):
    max_cost_usd: float | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    # With max_cost_usd, a step on a model without a known price is refused at plan time
    # (its cost could not count against the budget) unless this says to run it anyway.
    allow_unpriced: bool = False


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


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """pydantic's location as a readable path, naming steps by id: `steps[fix].timeout`."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            suffix = ""
            if isinstance(node, list) and 0 <= part < len(node):
                item = node[part]
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    suffix = f" ({item['id']})"
                node = item
            else:
                node = None
            out += f"[{part}]{suffix}"
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out += f".{part}" if out else str(part)
    return out


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
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            problems.append(Problem(_loc(err["loc"], data), msg))
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
