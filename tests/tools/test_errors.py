"""The one mapping from tutti's errors to MCP errors: tools and resources say what to call
next, and whatever tutti did not raise on purpose is left to the SDK."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError

from tutti_mcp.engine.errors import (
    ConfigurationError,
    Problem,
    SpecError,
)
from tutti_mcp.memory.files.paths import MemoryNotFound, MemoryPathError
from tutti_mcp.memory.runs.history import HistoryWriteError
from tutti_mcp.memory.runs.store import RunNotFound
from tutti_mcp.tools.errors import resource_error, resource_errors, tool_error, tool_errors


def test_a_missing_run_points_the_tool_caller_to_workflow_list() -> None:
    err = tool_error(RunNotFound("run_x"))
    assert str(err) == "no run with id 'run_x'; call workflow_list to see the runs"


def test_an_invalid_spec_lists_its_problems_and_points_to_workflow_plan() -> None:
    err = tool_error(SpecError([Problem("steps[0].id", "is missing")]))
    assert str(err) == (
        "workflow spec is invalid (1 problem):\n  - steps[0].id: is missing\n"
        "Fix the named fields and call again (workflow_plan checks a spec without running it)."
    )


def test_a_missing_memory_file_says_where_to_look_in_its_scope() -> None:
    missing = MemoryNotFound("/memories/a.md")
    assert str(tool_error(missing, scope="project:/repo")) == (
        "The path /memories/a.md does not exist. Please provide a valid path. View /memories "
        "(scope project:/repo) to list the files, or call memory_search."
    )
    as_resource = resource_error(missing, root_uri="memory://memories", scope="global")
    assert isinstance(as_resource, ResourceNotFoundError)
    assert str(as_resource) == (
        "no memory file /memories/a.md: read memory://memories for the list of files, "
        "or call memory_search"
    )


def test_a_missing_run_read_as_a_resource_is_not_found() -> None:
    err = resource_error(RunNotFound("run_x"))
    assert isinstance(err, ResourceNotFoundError)
    assert "read workflow://runs or call workflow_list" in str(err)


def test_other_refusals_keep_their_own_message() -> None:
    for exc in (ConfigurationError("set ANTHROPIC_API_KEY"), MemoryPathError("no '..' here")):
        assert str(tool_error(exc)) == str(exc)
        resource = resource_error(exc)
        assert type(resource) is ResourceError and str(resource) == str(exc)


def test_the_context_managers_map_refusals_and_let_crashes_through() -> None:
    with pytest.raises(ToolError, match="workflow_list"), tool_errors():
        raise RunNotFound("run_x")
    not_found = pytest.raises(ResourceNotFoundError, match="memory://memories")
    with not_found, resource_errors("memory://memories"):
        raise MemoryNotFound("/memories/a.md")
    with pytest.raises(KeyError), tool_errors():
        raise KeyError("a bug, not a refusal: the SDK reports it as a crash")


def test_every_refusal_under_the_one_root_becomes_an_error_with_its_message() -> None:
    # memory's errors are TuttiErrors too: one `except TuttiError` maps them
    history = HistoryWriteError("run_x", OSError("disk full"))
    with pytest.raises(ToolError) as as_tool, tool_errors():
        raise history
    assert str(as_tool.value) == "history of run run_x not recorded: disk full"
    with pytest.raises(ResourceError) as as_resource, resource_errors():
        raise MemoryPathError("no '..' here")
    assert type(as_resource.value) is ResourceError
    assert str(as_resource.value) == "no '..' here"
