"""What one run's execution may use, and the run it is handed: a narrow context (the store,
the executors, the configuration) instead of the whole engine, and the prepared run that
passes explicitly from "create" (or "claim") to "execute"."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.plan import Plan
from tutti_mcp.engine.spec import ExecutorKind, WorkflowSpec
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import EventKind, RunRecord, RunStatus
from tutti_mcp.memory.runs.store import RunStore

# Told of what happens in a run as it happens: (kind, step id or None, data).
EventSink = Callable[[EventKind, str | None, dict[str, Any]], None]


class ChildRuns(Protocol):
    """What runs a `workflow` step's child run (the engine): created and executed the first
    time, resumed when the step runs again, returned as it rests."""

    async def run_child(
        self,
        parent_id: str,
        step_id: str,
        spec: WorkflowSpec,
        inputs: Mapping[str, Any],
        workspace: Path,
    ) -> RunRecord: ...


@dataclass(frozen=True)
class RunContext:
    store: RunStore
    executors: Mapping[ExecutorKind, StepExecutor]
    config: EngineConfig
    children: ChildRuns | None = None


@dataclass
class PreparedRun:
    """A run ready to execute here: its record, its compiled workflow and its plan.
    `claimed_from` is the status the run had before this process claimed it (None: not
    claimed yet), so a run that cannot start is given back as it was."""

    run: RunRecord
    workflow: Workflow
    plan: Plan
    claimed_from: RunStatus | None = None

    @property
    def run_id(self) -> str:
        return self.run.id
