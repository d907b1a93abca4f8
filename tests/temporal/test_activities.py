"""The step activity on its own (temporalio's ActivityEnvironment, no server): how a step's
failure leaves the worker, and what Temporal may retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.temporal.conftest import local_executors
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.temporal.activities import StepActivities
from tutti_mcp.engine.temporal.codec import STEP_ERROR, to_wire

pytestmark = pytest.mark.anyio


def payload(step: dict[str, Any], tmp_path: Path, kind: str = "builtin") -> str:
    call = {
        "run_id": "run_x",
        "step": step,
        "attempt": 1,
        "context": {"inputs": {}},
        "deps": [],
        "timeout_s": 10,
        "workspace": str(tmp_path),
        "thinking": None,
        "model": None,
        "workflow": "w",
    }
    return to_wire({"kind": kind, "call": call})


async def run_step(wire: str, tmp_path: Path) -> Any:
    acts = StepActivities(local_executors(), ModelTable(), tmp_path)
    return await ActivityEnvironment().run(acts.execute_step, wire)


async def test_a_step_added_at_run_time_is_read_by_the_worker_under_its_own_id(
    tmp_path: Path,
) -> None:
    wire = payload({"id": "greet[1]", "args": "hi ${inputs}"}, tmp_path)
    assert await run_step(wire, tmp_path) == to_wire(
        {"output": "hi {}", "usage": None, "cost_usd": None, "warning": None}
    )


async def test_a_step_error_leaves_the_worker_as_itself_and_is_not_retried_by_temporal(
    tmp_path: Path,
) -> None:
    wire = payload({"id": "parse", "op": "parse_json", "args": "{not json"}, tmp_path)
    with pytest.raises(ApplicationError) as info:
        await run_step(wire, tmp_path)
    err = info.value
    assert (err.type, err.non_retryable) == (STEP_ERROR, True)
    assert err.message.startswith("not valid JSON")
    assert err.details[0]["message"] == err.message


async def test_a_step_the_worker_cannot_read_fails_once_instead_of_being_retried(
    tmp_path: Path,
) -> None:
    wire = payload({"id": "odd", "argv": "not a list"}, tmp_path, kind="shell")
    with pytest.raises(ApplicationError) as info:
        await run_step(wire, tmp_path)
    err = info.value
    assert (err.type, err.non_retryable) == (STEP_ERROR, True)
    assert "this worker cannot read step 'odd'" in err.message
    assert "same tutti version" in err.message
