"""What the run store keeps: statuses and records (the interface is memory/runs/store.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NotRequired, TypedDict, cast


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


class EventKind(StrEnum):
    """What an event says happened. Stored as its value; watchers and the CLI read it."""

    RUN_CREATED = "run_created"
    RUN_CLAIMED = "run_claimed"
    RUN_STARTED = "run_started"
    RUN_PENDING = "run_pending"
    RUN_RUNNING = "run_running"
    RUN_WAITING = "run_waiting"
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_INTERRUPTED = "run_interrupted"
    STEP_STARTED = "step_started"
    STEP_RETRYING = "step_retrying"
    STEP_RESET = "step_reset"  # resume sets a step that did not finish back to pending
    STEP_PENDING = "step_pending"
    STEP_RUNNING = "step_running"
    STEP_WAITING = "step_waiting"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_DEGRADED = "step_degraded"
    STEP_FAILED = "step_failed"
    STEP_SKIPPED = "step_skipped"
    STEP_CANCELLED = "step_cancelled"
    STEP_INTERRUPTED = "step_interrupted"
    CONDITION = "condition"  # a step's `when` was evaluated
    STEP_EXPANDED = "step_expanded"  # a step added steps to the run (foreach instances)
    PIPELINE_PROGRESS = "pipeline_progress"  # a pipeline step's figures (told, not stored)

    @classmethod
    def of_run(cls, status: RunStatus) -> EventKind:
        return _RUN_EVENT[status]

    @classmethod
    def of_step(cls, status: StepStatus) -> EventKind:
        return _STEP_EVENT[status]


_RUN_EVENT = {s: EventKind(f"run_{s.value}") for s in RunStatus}
_STEP_EVENT = {s: EventKind(f"step_{s.value}") for s in StepStatus}


class FailureDetail(TypedDict, total=False):
    """Why a step failed for good, and what its failure policy did."""

    error_kind: str  # an engine StepErrorKind value
    retryable: bool
    attempts: int
    errors: list[str]  # the last few attempts' errors
    policy: str
    action: str  # the core's FailureAction value
    usage: dict[str, Any]  # what its failed attempts consumed
    decision: dict[str, Any]  # an approval gate's rejection: approved, note, by, at


class SkipDetail(TypedDict):
    reason: str


class ClientFailureDetail(TypedDict):
    """The client reported the step failed while no process executed the run."""

    reported_by_client: bool
    decision: NotRequired[dict[str, Any]]  # an approval gate rejected meanwhile


class ClientRequest(TypedDict, total=False):
    """A step handed to the client: what it is asked to do (engine/executors/client.py)."""

    step_id: str
    instructions: str
    system: str | None
    inputs: dict[str, Any]
    thinking: str | None
    model_hint: str | None
    output: str | None
    attempt: int
    idempotency_key: str
    memory_scope: str
    approval: dict[str, Any]  # an approval gate: question, preview, deadline, on_reject
    child_run: str  # a `workflow` step: the child run that waits for the client


# A step's `detail`, typed by what it holds: a failure analysis, a skip reason, a client's
# failure report, or the request a waiting step was handed to the client with.
StepDetail = FailureDetail | SkipDetail | ClientFailureDetail | ClientRequest


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
    detail: StepDetail | None = None
    seq: int | None = None  # checkpoint sequence number when committed
    # added at run time: the step it belongs to, and what its templates see of its own
    parent: str | None = None
    scope: dict[str, Any] | None = None

    @property
    def failure(self) -> FailureDetail:
        """Why the step failed for good ({} unless it did)."""
        d = self.detail
        return cast(FailureDetail, d) if d is not None and "error_kind" in d else {}

    @property
    def request(self) -> ClientRequest:
        """What the step was handed to the client with ({} unless it was)."""
        d = self.detail
        return cast(ClientRequest, d) if d is not None and "instructions" in d else {}

    @property
    def skip_reason(self) -> str | None:
        d = self.detail
        return cast(SkipDetail, d)["reason"] if d is not None and "reason" in d else None

    @property
    def reported_by_client(self) -> bool:
        """The client reported the step failed while no process executed the run."""
        return self.detail is not None and "reported_by_client" in self.detail

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
    kind: EventKind
    step_id: str | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a run: whether this claim won, and the run's status and
    owner as the claim left (or found) them."""

    won: bool
    status: RunStatus
    owner: str | None
