"""The workflow tool functions, called without MCP: a caller's mistake is an error named
after the condition, under tutti's one error root, and not a step failure (`StepError`)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from tutti_mcp.engine import errors
from tutti_mcp.engine.errors import (
    ClientCannotSample,
    StepError,
    StepResultConflict,
    StepResultMissing,
    TuttiError,
    UnknownRunStatus,
)
from tutti_mcp.engine.executors.sampling import SamplingExecutor
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.supervisor import RunSupervisor
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.server.settings import Settings, build_engine
from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.sampling import SamplingBroker

pytestmark = pytest.mark.anyio

SAMPLED = {
    "name": "sampled",
    "steps": [{"id": "ask", "prompt": "Name a prime.", "run": "sampling"}],
}


@asynccontextmanager
async def tool_state(workspace: Path) -> AsyncIterator[wfl.ToolState]:
    """The tools' state over an in-memory store, with the sampling executor the server has."""
    broker = SamplingBroker()
    engine = build_engine(
        Settings(db_path=Path(":memory:"), api_key=None),
        InMemoryRunStore(),
        workspace=workspace,
        extra_executors={ExecutorKind.SAMPLING: SamplingExecutor(broker)},
    )
    async with anyio.create_task_group() as tg:
        yield wfl.ToolState(RunSupervisor(engine, tg), broker, workspace)
        tg.cancel_scope.cancel()


def assert_caller_mistake(exc: BaseException) -> None:
    assert isinstance(exc, TuttiError) and not isinstance(exc, StepError)


async def test_sampling_steps_for_a_client_that_cannot_sample_name_the_steps(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(10):
        async with tool_state(tmp_path) as state:
            with pytest.raises(ClientCannotSample) as raised:
                await wfl.start(state, SAMPLED, None, 0, can_sample=False)
            assert await state.supervisor.list_runs(None, 10) == []  # nothing started
    assert_caller_mistake(raised.value)
    assert raised.value.steps == ["ask"]
    assert str(raised.value).startswith("steps ask run on `sampling`, but the client connected")


async def test_a_step_result_needs_exactly_one_of_output_and_error(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        async with tool_state(tmp_path) as state:
            with pytest.raises(StepResultConflict) as both:
                await wfl.complete(state, "run_x", "ask", "7", "could not")
            with pytest.raises(StepResultMissing) as neither:
                await wfl.complete(state, "run_x", "ask", None, None)
    for raised in (both, neither):
        assert_caller_mistake(raised.value)
        assert raised.value.step_id == "ask"
    assert "not both" in str(both.value)
    assert "give output=... with the result of step 'ask'" in str(neither.value)


async def test_listing_runs_by_an_unknown_status_lists_the_known_ones(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        async with tool_state(tmp_path) as state:
            with pytest.raises(UnknownRunStatus) as raised:
                await wfl.list_runs(state, "finished", 10)
    assert_caller_mistake(raised.value)
    assert str(raised.value).startswith("unknown status 'finished'; use one of: pending, running")


def test_every_error_tutti_defines_in_the_engine_is_under_its_one_root() -> None:
    defined = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    ]
    assert len(defined) > 5
    assert [c.__name__ for c in defined if not issubclass(c, TuttiError)] == []
