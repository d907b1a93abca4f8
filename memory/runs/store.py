"""The run store's interface, which the engine programs against, and the one error every
store raises for an unknown run. The stores: memory/runs/sqlite_store.py (durable) and
memory/runs/mem_store.py (plain dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tutti_mcp.memory.errors import TuttiError
from tutti_mcp.memory.runs.history import HISTORY_WINDOW, HistoryEntry, WorkflowHistory
from tutti_mcp.memory.runs.pipeline_rows import ItemRow, PipelineMark, PipelineSnapshot
from tutti_mcp.memory.runs.records import (
    Checkpoint,
    Claim,
    Event,
    RunRecord,
    RunStatus,
    StepStatus,
)

# The fields set_run and set_step may change (every store refuses the others, as SQLite
# has no column for them).
RUN_FIELDS = frozenset(
    {
        "status",
        "started_at",
        "finished_at",
        "owner",
        "error",
        "metrics",
        "name",
        "inputs",
        "spec",
        "workspace",
    }
)
STEP_FIELDS = frozenset({"attempts", "executor", "started_at", "finished_at", "error", "detail"})


class RunNotFound(TuttiError, LookupError):
    """No run has this id (never created, or pruned)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}; `tutti runs` lists the known runs")


class RunStore(Protocol):
    """Persistence of runs. `commit_checkpoint` and `set_step` return once durable;
    `note_step_started` and `append_event` ride along with the next durable write.
    `load_run` and `claim_run` raise RunNotFound for an unknown run id."""

    async def create_run(self, run: RunRecord, step_ids: Sequence[str]) -> None: ...
    async def load_run(self, run_id: str) -> RunRecord: ...
    async def set_run(self, run_id: str, **fields: Any) -> None: ...
    async def claim_run(self, run_id: str, owner: str, dead_owner: str | None = None) -> Claim: ...
    def note_step_started(self, run_id: str, step_id: str, attempt: int, at: float) -> None: ...
    def append_event(self, event: Event) -> None: ...
    async def commit_checkpoint(self, run_id: str, cp: Checkpoint) -> None: ...
    async def set_step(
        self, run_id: str, step_id: str, status: StepStatus, **fields: Any
    ) -> None: ...
    async def reset_steps(self, run_id: str, step_ids: Sequence[str]) -> None: ...
    # Steps added at run time under `parent` (each id with its scope), pending, with the
    # parent marked running: one durable write. `start`: their place after earlier ones.
    async def add_steps(
        self, run_id: str, parent: str, steps: Sequence[tuple[str, dict[str, Any]]], start: int = 0
    ) -> None: ...
    # Pipeline steps (memory/runs/pipeline_rows.py): a batch of item rows and the step's
    # mark in one durable write; rows of sunk items before `prune_before` are deleted in it.
    async def commit_pipeline(
        self,
        run_id: str,
        step_id: str,
        rows: Sequence[ItemRow],
        mark: PipelineMark,
        prune_before: int = 0,
    ) -> None: ...
    async def load_pipeline(
        self, run_id: str, step_id: str, rows: bool = True
    ) -> PipelineSnapshot: ...
    async def checkpoints(self, run_id: str) -> list[Checkpoint]: ...
    async def list_runs(
        self, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]: ...
    async def events(self, run_id: str, after: int = 0) -> list[tuple[int, float, Event]]: ...
    async def flush(self) -> None: ...
    # Workflow memory (memory/runs/history.py). `record_history` replaces the run's entry, so
    # a resumed run that finishes again is counted once; it raises HistoryWriteError.
    async def record_history(self, entry: HistoryEntry) -> None: ...
    async def workflow_history(
        self,
        name: str,
        limit: int = HISTORY_WINDOW,
    ) -> WorkflowHistory: ...
