"""The pipeline spec: where the items come from (`source`), the stages each item goes
through, the bounded buffer between stages, whether output keeps item order, and where
it goes (`sink`).

A pipeline is a step (`{id: p, pipeline: {...}}`), so it can sit in a chain; the top-level
form `type: pipeline` with `source`, `stages`, ... is that step alone (engine.modes.sugar).
A stage is written like a step (`run`, `prompt`, `command`, `op`, `argv`, ...) and runs on
the same executors; it reads its item as `${item}`, its position as `${item_index}` and an
earlier stage's result for the same item as `${STAGE.output}`.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from tutti_mcp.engine.spec_parts import BuiltinOp, ExecutorKind, SpecModel, ThinkingMode
from tutti_mcp.engine.spec_strings import strings_in

if TYPE_CHECKING:
    from tutti_mcp.engine.spec import Step

STAGE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ITEM_WORDS = frozenset({"item", "item_index"})
# Names a stage id cannot take: what templates read as something else.
RESERVED = frozenset(
    {"inputs", "steps", "run", "loop", "true", "false", "none", "null", "self", *ITEM_WORDS}
)
MAX_BUFFER = 100_000
MAX_CONCURRENCY = 256
MAX_BATCH = 1_000
MAX_STAGES = 64


class Source(SpecModel):
    """Exactly one of: a list (or a template whose value is one), the lines or JSON lines
    of a workspace file, workspace files by glob, the stdout lines of an allowed command."""

    items: Any = Field(None, description="a list, or a template whose value is a list")
    lines: str | None = Field(None, description="a workspace file: each non-blank line is an item")
    jsonl: str | None = Field(None, description="a workspace file of JSON values, one a line")
    glob: str | None = Field(
        None, description="workspace files matching this pattern (a template), sorted"
    )
    command: list[str] | None = Field(
        None,
        min_length=1,
        description="argv of an allowed program (the shell policy): each stdout line is an item",
    )

    @model_validator(mode="after")
    def _one(self) -> Source:
        names = ("items", "lines", "jsonl", "glob", "command")
        given = [n for n in names if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "a pipeline `source` needs exactly one of items, lines, jsonl, glob, command"
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        names = ("lines", "jsonl", "glob", "command")
        return next((n for n in names if getattr(self, n) is not None), "items")


class Sink(SpecModel):
    """Where finished items go: the step's output (the default), a JSONL file in the
    workspace, or a memory file (`/memories/...`)."""

    output: bool = Field(False, description="the items' outputs become the step's output")
    jsonl: str | None = Field(None, description="a workspace file: one JSON line per item")
    memory: str | None = Field(None, description="a memory file: one JSON line per item")
    scope: str = Field(
        "global", description="the memory file's scope: global, project, workflow, or a scope"
    )

    @model_validator(mode="after")
    def _one(self) -> Sink:
        given = [n for n in ("output", "jsonl", "memory") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"a pipeline `sink` is one of output, jsonl, memory; got {given}")
        if self.memory is not None and not self.memory.startswith("/memories/"):
            raise ValueError(f"sink.memory {self.memory!r} must be a path under /memories/")
        if self.memory is None and "scope" in self.model_fields_set:
            raise ValueError("sink `scope` is a memory file's scope: give it with `memory`")
        return self

    @property
    def kind(self) -> str:
        return "jsonl" if self.jsonl else "memory" if self.memory else "output"


# A stage's fields that a step has too, handed to the stage's step as they are.
STEP_FIELDS = (
    "run",
    "command",
    "args",
    "argv",
    "env",
    "prompt",
    "system",
    "model",
    "thinking",
    "max_tokens",
    "op",
    "value",
    "output",
    "json_schema",
    "timeout",
)


class Stage(SpecModel):
    id: str
    run: ExecutorKind | None = Field(None, description="executor; inferred when omitted")
    command: str | None = Field(None, description="seed form: /query, /task, /bash ...")
    args: str | None = None
    argv: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    prompt: str | None = None
    system: str | None = None
    model: str | None = None
    thinking: ThinkingMode | None = None
    max_tokens: int | None = Field(None, ge=1, le=128_000)
    op: BuiltinOp | None = None
    value: Any = None
    output: Literal["text", "json"] = "text"
    json_schema: dict[str, Any] | None = None
    concurrency: int = Field(1, ge=1, le=MAX_CONCURRENCY, description="items worked at once")
    batch: int | None = Field(
        None, ge=1, le=MAX_BATCH, description="items handed over together (client: one task)"
    )
    timeout: float | None = Field(None, gt=0, le=86_400, description="seconds per item attempt")
    retries: int = Field(0, ge=0, le=20, description="attempts after the first, per item")
    when: str | None = Field(None, description="run for items where this holds; else pass")

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not STAGE_ID.match(v):
            raise ValueError(
                f"stage id {v!r} must start with a letter or _ and use only letters, digits "
                "and _ (it is used in templates as ${" + "id.output}), at most 64 characters"
            )
        if v.lower() in RESERVED:
            raise ValueError(f"stage id {v!r} is reserved; choose another name")
        return v

    @field_validator("run")
    @classmethod
    def _runs_items(cls, v: ExecutorKind | None) -> ExecutorKind | None:
        if v is ExecutorKind.GATE:
            raise ValueError("a stage cannot be an approval gate: it runs once per item")
        return v

    @model_validator(mode="after")
    def _as_step(self) -> Stage:
        if self.op is BuiltinOp.MERGE:
            raise ValueError(
                "op 'merge' has no dependencies to merge in a stage; read earlier stages "
                "with ${STAGE.output} in a `json` op instead"
            )
        _ = self.step  # the step's own checks (unknown command, json_schema, ...)
        return self

    @cached_property
    def step(self) -> Step:
        """The stage as a step: what its executor is given for each item."""
        from tutti_mcp.engine.spec import Step  # Step has a `pipeline` field: built later

        fields = {f: getattr(self, f) for f in STEP_FIELDS if f in self.model_fields_set}
        return Step.model_validate({"id": self.id, **fields})

    @property
    def executor(self) -> ExecutorKind:
        return self.step.executor

    def templated_strings(self, prefix: str) -> list[tuple[str, str]]:
        out = [(f"{prefix}.{n}", t) for n, t in self.step.templated_strings()]
        if self.when is not None:
            out.append((f"{prefix}.when", self.when))
        return out


class PipelineSpec(SpecModel):
    source: Source
    stages: list[Stage] = Field(min_length=1, description="what each item goes through, in order")
    buffer: int = Field(
        100, ge=1, le=MAX_BUFFER, description="items waiting between two stages, at most"
    )
    ordered: bool = Field(True, description="items reach the sink in source order")
    sink: Sink = Field(default_factory=Sink)

    @field_validator("source", mode="before")
    @classmethod
    def _source_shorthand(cls, v: Any) -> Any:
        return {"items": v} if isinstance(v, str | list) else v

    @field_validator("sink", mode="before")
    @classmethod
    def _sink_shorthand(cls, v: Any) -> Any:
        return {"output": True} if v == "output" else v

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, stages: list[Stage]) -> list[Stage]:
        if len(stages) > MAX_STAGES:
            raise ValueError(f"a pipeline has at most {MAX_STAGES} stages; got {len(stages)}")
        seen: set[str] = set()
        for i, stage in enumerate(stages):
            if stage.id in seen:
                raise ValueError(f"stages[{i}]: duplicate stage id {stage.id!r}")
            seen.add(stage.id)
        return stages

    @property
    def stage_ids(self) -> list[str]:
        return [s.id for s in self.stages]

    @property
    def names(self) -> frozenset[str]:
        """What the pipeline's templates read of its own: its items and its stages."""
        return ITEM_WORDS | frozenset(self.stage_ids)

    def templated_strings(self) -> list[tuple[str, str]]:
        """(field, text) of every template the pipeline renders at run time."""
        src = self.source
        out = [(f"pipeline.source.items{p}", s) for p, s in strings_in(src.items, "")]
        names = ("lines", "jsonl", "glob")
        out += [(f"pipeline.source.{n}", t) for n in names if (t := getattr(src, n))]
        out += [(f"pipeline.source.command[{i}]", a) for i, a in enumerate(src.command or [])]
        sink = self.sink
        out += [(f"pipeline.sink.{n}", t) for n in ("jsonl", "memory") if (t := getattr(sink, n))]
        for i, stage in enumerate(self.stages):
            out += stage.templated_strings(f"pipeline.stages[{i}]")
        return out
