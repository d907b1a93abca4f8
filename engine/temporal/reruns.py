"""`resume` and `fork` on the Temporal backend: a new workflow execution seeded with the
steps a closed run committed (engine/temporal/seeds.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tutti_mcp.engine.errors import RunStateError
from tutti_mcp.engine.service import Engine, fork_plan, new_run_id
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.temporal.client import TemporalRuns
from tutti_mcp.engine.temporal.seeds import seed_of
from tutti_mcp.memory.runs.records import RunRecord, RunStatus


async def resume(runs: TemporalRuns, run_id: str) -> RunRecord:
    """Run a closed run again under its id, from every step it committed."""
    view = await runs.view(run_id)
    record = view.record
    if view.open:
        raise RunStateError(
            f"run {run_id} is executing on Temporal's workers already; nothing to resume"
        )
    if not record.status.resumable:
        raise RunStateError(
            f"run {run_id} is {record.status.value}; only failed, cancelled or waiting runs "
            "resume (fork it with a from_step or new inputs to run it again)"
        )
    await runs.submit(
        run_id,
        record.spec,
        record.inputs,
        record.workspace or ".",
        ExecutorKind.PROMPT,  # the stored spec names where its model steps run
        record.name,
        extra={"seed": seed_of(record), "parent_run_id": record.parent_run_id},
    )
    record.status = RunStatus.RUNNING
    return record


async def fork(
    runs: TemporalRuns,
    engine: Engine,
    run_id: str,
    from_step: str | None,
    inputs: Mapping[str, Any] | None,
) -> tuple[str, list[str]]:
    """A new run of the parent's spec that keeps what Engine.fork would keep."""
    parent = await runs.record(run_id)
    wf = engine.compile(parent.spec)
    new_inputs, keep = fork_plan(wf, parent, from_step, inputs)
    new_id = new_run_id()
    await runs.submit(
        new_id,
        parent.spec,
        new_inputs,
        parent.workspace or ".",
        ExecutorKind.PROMPT,
        parent.name,
        extra={"seed": seed_of(parent, keep), "parent_run_id": run_id},
    )
    return new_id, keep
