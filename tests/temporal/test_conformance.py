"""The same specs on the embedded backend and on Temporal end alike: the run's status, and
each step's status, output, attempts, error and skip reason or failure detail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.temporal.cases import CASES
from tests.temporal.conformance import Case, normalized, run_embedded, run_temporal
from tests.temporal.conftest import Backend
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.memory.runs.records import RunStatus, StepStatus

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_a_spec_ends_on_temporal_exactly_as_on_the_embedded_backend(
    case: Case, backend: Backend
) -> None:
    embedded = await run_embedded(case, backend.workspace.parent / "embedded", backend.executors)
    on_temporal = await run_temporal(case, backend)
    assert normalized(on_temporal) == normalized(embedded)


@pytest.mark.parametrize(
    ("step", "says"),
    [
        (
            {
                "id": "files",
                "pipeline": {
                    "source": {"items": [1, 2]},
                    "stages": [{"id": "double", "op": "json", "value": "${item * 2}"}],
                },
            },
            "pipeline steps run on the embedded backend only",
        ),
        ({"id": "ask", "run": "sampling", "prompt": "hi"}, "sampling needs the MCP client"),
    ],
)
async def test_a_spec_temporal_cannot_run_is_refused_before_anything_is_submitted(
    backend: Backend, step: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says) as info:
        await backend.start({"name": "refused", "steps": [step]})
    assert "cannot run on the Temporal backend" in str(info.value)
    query = f'TaskQueue = "{backend.runs.task_queue}"'
    assert [wf async for wf in backend.runs.client.list_workflows(query)] == []


async def test_a_shell_step_the_workers_do_not_allow_fails_with_their_policy_error(
    backend: Backend,
) -> None:
    case = Case("not-allowed", {"name": "ls", "steps": [{"id": "list", "argv": ["ls", "-l"]}]})
    outcome = await run_temporal(case, backend)
    rec = outcome.record.steps["list"]
    assert (outcome.record.status, rec.status) == (RunStatus.FAILED, StepStatus.FAILED)
    assert rec.error is not None
    assert "program 'ls' is not allowed" in rec.error
    assert "TUTTI_ALLOW_SHELL" in rec.error
    assert rec.attempts == 1  # a refusal is not retried, by tutti nor by Temporal
