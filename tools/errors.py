"""The one mapping from tutti's errors to MCP errors: what a tool call or a resource read
answers when tutti refuses, each message saying what to call next.

Only errors tutti raises on purpose are mapped: `TuttiError`, the root of all of them
(memory's `RunNotFound` and `MemoryFileError` included); anything else propagates to the
SDK, which reports it as a crash."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError

from tutti_mcp.engine.errors import SpecError, TuttiError
from tutti_mcp.memory.files.paths import GLOBAL, MemoryNotFound
from tutti_mcp.memory.runs.store import RunNotFound
from tutti_mcp.tools.memory import not_found_hint


def tool_error(exc: TuttiError, *, scope: str = GLOBAL) -> ToolError:
    """The tool error for `exc`; `scope` is the memory scope the call worked in."""
    if isinstance(exc, RunNotFound):
        return ToolError(f"no run with id {exc.run_id!r}; call workflow_list to see the runs")
    if isinstance(exc, SpecError):
        return ToolError(
            f"{exc}\nFix the named fields and call again (workflow_plan checks a spec without running it)."
        )
    if isinstance(exc, MemoryNotFound):
        return ToolError(not_found_hint(exc, scope))
    return ToolError(str(exc))


def resource_error(exc: TuttiError, *, root_uri: str = "", scope: str = GLOBAL) -> ResourceError:
    """The resource error for `exc` (a missing run or file is INVALID_PARAMS, the rest
    INTERNAL_ERROR, both with the message); `root_uri` lists the memory files of `scope`."""
    if isinstance(exc, RunNotFound):
        return ResourceNotFoundError(
            f"no run with id {exc.run_id!r}; read workflow://runs or call workflow_list to see the runs"
        )
    if isinstance(exc, MemoryNotFound):
        where = "" if scope == GLOBAL else f" in scope {scope}"
        return ResourceNotFoundError(
            f"no memory file {exc.path}{where}: read {root_uri} for the list of files, or "
            "call memory_search"
        )
    return ResourceError(str(exc))


@contextmanager
def tool_errors(scope: str = GLOBAL) -> Iterator[None]:
    """Around a tool's body: tutti's refusals become tool errors (see `tool_error`)."""
    try:
        yield
    except TuttiError as exc:
        raise tool_error(exc, scope=scope) from None


@contextmanager
def resource_errors(root_uri: str = "", scope: str = GLOBAL) -> Iterator[None]:
    """Around a resource's body: tutti's refusals become resource errors (see `resource_error`)."""
    try:
        yield
    except TuttiError as exc:
        raise resource_error(exc, root_uri=root_uri, scope=scope) from None
