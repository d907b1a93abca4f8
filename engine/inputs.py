"""A run's inputs: the declared ones with defaults applied, and values given as strings
(on the command line) converted to their declared type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.spec import InputSpec, WorkflowSpec


def coerce_inputs(spec: WorkflowSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Declared inputs with defaults applied and CLI strings converted to their type."""
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for name in given:
        if name not in spec.inputs:
            declared = ", ".join(spec.inputs) or "none"
            problems.append(
                Problem(f"inputs.{name}", f"unknown input (the workflow declares: {declared})")
            )
    for name, decl in spec.inputs.items():
        if name in given:
            try:
                out[name] = _coerce(decl, given[name])
            except ValueError as exc:
                problems.append(Problem(f"inputs.{name}", str(exc)))
        elif decl.required and decl.default is None:
            problems.append(
                Problem(f"inputs.{name}", f"required input is missing: pass --input {name}=VALUE")
            )
        else:
            out[name] = decl.default
    if problems:
        raise SpecError(problems)
    return out


def _coerce(decl: InputSpec, value: Any) -> Any:
    if not isinstance(value, str) or decl.type == "string":
        return value
    try:
        if decl.type == "integer":
            return int(value)
        if decl.type == "number":
            return float(value)
        if decl.type == "boolean":
            low = value.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        return json.loads(value)
    except (ValueError, json.JSONDecodeError):
        raise ValueError(f"expected {decl.type}, got {value!r}") from None
