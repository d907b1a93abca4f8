"""What the run store keeps: statuses, records, and the interface every store implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tutti_mcp.memory.history import HistoryEntry, WorkflowHistory


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # only client-executed steps are left, waiting for their output
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the process running it died

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)

    @property
    def resumable(self) -> bool:
        return self in (
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.INTERRUPTED,
            RunStatus.WAITING,
            RunStatus.PENDING,
        )


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # handed to the client; its output comes from step_complete
    SUCCEEDED = "succeeded"
    DEGRADED = "degraded"  # failed, its `default` stands in as output (policy degrade)
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # was running when its process died; resume runs it again

    @property
    def has_output(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.DEGRADED)

    @property
    def terminal(self) -> bool:
        return self in (
            StepStatus.SUCCEEDED,
            StepStatus.DEGRADED,
            StepStatus.FAILED,
            StepStatus.SKIPPED,
        )


@dataclass
class StepRecord:
    step_id: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    executor: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    output: Any = None
    usage: dict[str, Any] | None = None
    error: str | None = None
    detail: dict[str, Any] | None = None  # failure analysis, skip reason, client request
    seq: int | None = None  # checkpoint sequence number when committed

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass
class RunRecord:
    id: str
    name: str
    status: RunStatus
    spec: dict[str, Any]
    inputs: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    owner: str | None = None
    parent_run_id: str | None = None
    error: str | None = None
    metrics: dict[str, Any] | None = None
    workspace: str | None = None  # where shell steps run; kept so resume runs them there
    steps: dict[str, StepRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A committed step: its output and what it cost. Never rewritten; one row per step."""

    step_id: str
    seq: int  # 1, 2, ... in commit order within the run; 0: the store assigns the next
    status: StepStatus  # succeeded or degraded
    output: Any
    attempts: int
    started_at: float | None
    finished_at: float
    usage: dict[str, Any] | None = None
    executor: str | None = None
    error: str | None = None  # for degraded steps: the failure the default stands in for


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    kind: str
    step_id: str | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a run: whether this claim won, and the run's status and
    owner as the claim left (or found) them."""

    won: bool
    status: RunStatus
    owner: str | None


class RunStore(Protocol):
    """Persistence of runs. `commit_checkpoint` and `set_step` return once durable;
    `note_step_started` and `append_event` ride along with the next durable write."""

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
    async def checkpoints(self, run_id: str) -> list[Checkpoint]: ...
    async def list_runs(
        self, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]: ...
    async def events(self, run_id: str, after: int = 0) -> list[tuple[int, float, Event]]: ...
    async def flush(self) -> None: ...
    # Workflow memory (memory/history.py). `record_history` replaces the run's entry, so
    # a resumed run that finishes again is counted once; it raises HistoryWriteError.
    async def record_history(self, entry: HistoryEntry) -> None: ...
    async def workflow_history(
        self,
        name: str,
        limit: int = 20,  # history.HISTORY_WINDOW
    ) -> WorkflowHistory: ...
