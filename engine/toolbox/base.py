"""What every tool of the toolbox is: an Anthropic custom tool definition (name,
description, JSON Schema of its input) and an async handler that returns text, or raises
ToolUseError for the model to act on (it goes back as a `tool_result` with `is_error`)."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tutti_mcp.engine.errors import TuttiError

OUTPUT_CAP = 64 * 1024  # bytes of text one tool call returns at most


class ToolUseError(TuttiError):
    """A tool call that did not do what the model asked: the message says why and what to
    do instead, for the model to read."""


class ToolInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tool(Protocol):
    @property
    def name(self) -> str: ...

    def definition(self) -> dict[str, Any]: ...

    async def run(self, raw: object) -> str: ...


In = TypeVar("In", bound=ToolInput)


def custom_tool(name: str, description: str, model: type[ToolInput]) -> dict[str, Any]:
    """The tool's definition for the Messages API `tools` list."""
    return {"name": name, "description": description, "input_schema": _untitled(model)}


def _untitled(model: type[ToolInput]) -> dict[str, Any]:
    # pydantic's titles repeat the field names: tokens of every request for nothing
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def parse_input(name: str, model: type[In], raw: object) -> In:
    """The tool's input, checked; ToolUseError naming each wrong field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        wrong = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        fields = ", ".join(model.model_fields)
        raise ToolUseError(f"invalid input for `{name}` ({wrong}); its fields: {fields}") from None


def capped(text: str, cap: int = OUTPUT_CAP, hint: str = "") -> str:
    """`text` cut to `cap` bytes of UTF-8, saying so (and `hint`: how to get the rest)."""
    data = text.encode()
    if len(data) <= cap:
        return text
    kept = data[:cap].decode(errors="ignore")
    return f"{kept}\n[output cut at {cap} bytes{': ' + hint if hint else ''}]"
