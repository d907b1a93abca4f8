"""A step's `memory:` field: the forms it takes, and the stored form of each."""

from __future__ import annotations

from typing import Any

from tutti_mcp.memory.files.paths import SCOPE_KINDS, MemoryFileError, parse_scope

# `memory:` keywords, resolved per run by engine.agent_memory; `true` means "workflow".
MEMORY_KEYWORDS = ("workflow", "global", "project")
MEMORY_FORMS = 'true, false, "workflow", "global", "project", "project:<key>" or "workflow:<name>"'


def memory_form(v: Any) -> str | None:
    """A step's `memory:` value in its stored form: None, a keyword, or a scope."""
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
