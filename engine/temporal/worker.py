"""`tutti worker`: takes the Temporal backend's runs (the generic workflow) and their steps
(activities) from the task queue, on any machine, with the executors and the shell policy
this machine's settings allow, exactly as `tutti serve` would build them."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.temporal import workflow as run_workflow
from tutti_mcp.engine.temporal.activities import StepActivities
from tutti_mcp.engine.temporal.workflow import TuttiRunWorkflow, WorkflowSetup
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore


def preload() -> None:
    """Import now what a run's first workflow activation would otherwise import: anyio's
    asyncio backend (loaded on first use) and the spec, compile and template machinery. An
    activation that does not yield within 2 s is failed by Temporal as a deadlock, and a
    loaded machine importing these in the workflow's thread took longer."""
    importlib.import_module("anyio._backends._asyncio")
    Engine(InMemoryRunStore(), {}).compile(
        {
            "inputs": {"x": "1"},
            "steps": [
                {"id": "a", "args": "${inputs.x | upper}"},
                {"id": "b", "when": "${a.output == '1'}", "args": "${a.output}"},
            ],
        }
    )


def new_worker(
    client: Client,
    task_queue: str,
    executors: Mapping[ExecutorKind, StepExecutor],
    models: ModelTable,
    *,
    workspace: Path | None,
    max_concurrency: int,
    heartbeat_s: float,
    roll_at_events: int | None = None,
) -> Worker:
    """A worker for the runs and steps of `task_queue`. The workflow's setup is this
    process's: every worker of a queue must be configured alike (same models table)."""
    preload()
    run_workflow.SETUP = WorkflowSetup(
        models=models, max_concurrency=max_concurrency, heartbeat_s=heartbeat_s
    )
    if roll_at_events is not None:  # tests roll runs over early
        run_workflow.SETUP.roll_at_events = roll_at_events
    acts = StepActivities(executors, models, workspace)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TuttiRunWorkflow],
        activities=[acts.execute_step],
        max_concurrent_activities=max_concurrency,
        # a killed worker's runs move to another worker within seconds, not the default 5
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=min(5.0, heartbeat_s)),
    )
