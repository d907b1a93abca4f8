"""What the workflow tools return: pydantic models, so each tool has an output schema and
structured content. Field descriptions are short: every tool definition costs the
client context."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ClientTask(BaseModel):
    # a step handed to the caller: do it, then report with step_complete
    step_id: str
    instructions: str
    system: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)  # outputs of its dependencies
    thinking: str | None = None
    output: str | None = Field(None, description="json: answer in JSON")


class RunState(BaseModel):
    run_id: str
    status: str
    done: int
    total: int
    steps: dict[str, str]  # step id: status
    outputs: dict[str, Any] = Field(default_factory=dict)  # previews of step outputs
    errors: dict[str, Any] = Field(default_factory=dict)
    client_tasks: list[ClientTask] = Field(default_factory=list)
    # steps added at run time (foreach instances, loop iterations), counted by status under
    # the step that added them; `steps` lists those not yet succeeded. A comment, not a
    # description: RunState is the output schema of four tools, all in the client's context.
    added: dict[str, dict[str, int]] = Field(default_factory=dict)
    # pipeline steps: items done, in flight and dead per stage, throughput, latency
    pipelines: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    next: str


class Cancelled(BaseModel):
    run_id: str
    status: str
    cancelled: list[str] = Field(description="steps stopped")
    next: str


class RunResult(BaseModel):
    run_id: str
    name: str
    status: str
    error: str | None = None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    steps: dict[str, Any] = Field(
        description="per step: status, attempts, seconds, executor, output, error, usage"
    )
    metrics: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    pipelines: dict[str, Any] = Field(default_factory=dict)  # figures per stage, dead letters
    parent_run_id: str | None = None
    next: str


class PlanResult(BaseModel):
    name: str
    mode: str
    mode_reason: str
    steps: dict[str, Any] = Field(
        description="per step: executor, depends_on, estimate_s, model, thinking and why"
    )
    groups: list[list[str]]
    critical_path: list[str]
    critical_path_s: float
    estimated_s: float
    estimated_speedup: float
    implicit_edges: list[list[str]]
    mermaid: str
    cost: dict[str, Any]
    history: dict[str, Any] | None = None  # recent runs of this workflow name
    workspace: dict[str, str]  # {path, why}: where a run of it started now would work
    next: str


class RunSummary(BaseModel):
    run_id: str
    name: str
    status: str
    steps: int | None = None
    created_at: float
    parent_run_id: str | None = None
    error: str | None = None


class RunList(BaseModel):
    runs: list[RunSummary]


class CheckpointInfo(BaseModel):
    step_id: str
    seq: int
    status: str
    seconds: float | None = None
    output: Any = None


class CheckpointList(BaseModel):
    run_id: str
    checkpoints: list[CheckpointInfo]


class Resumed(RunState):
    forked_from: str | None = None
    parent_run_id: str | None = None  # the run's lineage, as workflow_result gives it
    kept: list[str] = Field(default_factory=list)
