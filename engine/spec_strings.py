"""Helpers for the spec models: a step's strings (where templates can be), its command
line split into words with templates kept whole, JSON Schema checks, and validation
error locations made readable."""

from __future__ import annotations

import re
import shlex
from typing import Any


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a valid JSON Schema (its draft's meta-schema says), else None."""
    import jsonschema  # only specs with a json_schema pay for importing it

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"{exc.message}" + (f" (at {where})" if where else "")
    return None


TEMPLATE_SPAN = re.compile(r"\$\{(?:[^{}]|\{[^{}]*\})*\}")


def split_keeping_templates(text: str) -> list[str]:
    """shlex.split, except that a `${...}` span stays whole even if it has spaces or quotes
    inside (`echo ${inputs.v | upper}` is two words)."""
    spans: list[str] = []

    def hide(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return f"\x00{len(spans) - 1}\x00"

    words = shlex.split(TEMPLATE_SPAN.sub(hide, text))
    return [re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], w) for w in words]


def strings_in(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in strings_in(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in strings_in(v, f"{path}[{i}]")]
    return []


def readable_loc(loc: tuple[int | str, ...], data: Any) -> str:
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
