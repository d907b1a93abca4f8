"""The top-level forms of the swarm and pipeline modes: a spec that says `type: swarm` (or
`pipeline`) and gives the mode's fields at the top, as the seed writes it, is a workflow of
that one step. Shape errors are reported at the field as written (`agents.x.backup`), not
at the step it becomes."""

from __future__ import annotations

from typing import Any

from tutti_mcp.engine.modes.swarm.spec import DEFAULT_TASK

# mode -> (the step's id and field, the top-level keys that go into that field)
TOP_LEVEL: dict[str, tuple[str, frozenset[str]]] = {
    "swarm": (
        "swarm",
        frozenset({"topology", "agents", "coordination", "task", "max_rounds", "max_subtasks"}),
    ),
    "pipeline": ("pipeline", frozenset({"source", "stages", "buffer", "ordered", "sink"})),
}
TASK_INPUT = {"type": "string", "required": True, "description": "what the swarm is to do"}


def unsugar(data: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...] | None]:
    """The spec as a workflow, and the error location prefix its fields moved under (None
    when it was one already)."""
    mode = data.get("type")
    if not isinstance(mode, str) or mode not in TOP_LEVEL or "steps" in data:
        return data, None
    field, keys = TOP_LEVEL[mode]
    moved = {k: v for k, v in data.items() if k in keys}
    if not moved:
        return data, None
    out = {k: v for k, v in data.items() if k not in keys}
    inputs = out.get("inputs")
    if mode == "swarm" and "task" not in moved and (inputs is None or isinstance(inputs, dict)):
        if "task" not in (inputs or {}):  # the seed's form names no task: the caller gives it
            out["inputs"] = {**(inputs or {}), "task": dict(TASK_INPUT)}
        moved["task"] = DEFAULT_TASK
    out["steps"] = [{"id": field, field: moved}]
    return out, ("steps", 0, field)


def sugared_loc(loc: tuple[Any, ...], prefix: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """An error location in the workflow, as the user wrote it."""
    if prefix is not None and loc[: len(prefix)] == prefix:
        return loc[len(prefix) :]
    return loc
