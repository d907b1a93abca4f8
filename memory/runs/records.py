"""What the run store keeps: statuses and records (the interface is memory/runs/store.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
