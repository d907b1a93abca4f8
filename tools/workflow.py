"""The workflow tools as plain functions over the run supervisor. They return the
pydantic models of `tools.results`; `tools.workflow_mcp` wraps them for MCP."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine.errors import (
    ClientCannotSample,
    StepResultConflict,
    StepResultMissing,
    UnknownRunStatus,
)
from tutti_mcp.engine.modes.pipeline.report import pipeline_figures
from tutti_mcp.engine.plan import estimate_source
from tutti_mcp.engine.report import recovery_plan
from tutti_mcp.engine.spec import (
    ExecutorKind,
    WorkflowSpec,
)
from tutti_mcp.engine.spec_source import DEFAULT_LIMITS, SpecLimits, check_data
from tutti_mcp.engine.supervisor import TAKES_RESULTS, ReportProgress, RunSupervisor
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus
from tutti_mcp.memory.runs.tasks import TaskStore
from tutti_mcp.tools.elicitation import GateAsker
from tutti_mcp.tools.next_hint import next_step as next_step  # re-exported
from tutti_mcp.tools.results import (
    Cancelled,
    CheckpointInfo,
    CheckpointList,
    ClientTask,
    PlanResult,
    Resumed,
    RunList,
    RunResult,
    RunState,
    RunSummary,
)
from tutti_mcp.tools.sampling import NO_SAMPLING, SamplingBroker
from tutti_mcp.tools.spec_input import load_spec
from tutti_mcp.tools.workspace import Workspace, choose

MAX_WAIT_S = 45  # clients drop a call after about 60 s
COMPLETE_WAIT_S = 10.0  # step_complete waits this long for the run to need the caller again
PREVIEW_CHARS = 600
_TERMINAL = frozenset(s for s in StepStatus if s.terminal)
_HAS_OUTPUT = frozenset(s for s in StepStatus if s.has_output)
# The id of the MCP task a tool call is answered with, while it runs (server/tasks_ext.py):
# the task is the handle to wait on, so the call itself waits for nothing.
AS_TASK: ContextVar[str | None] = ContextVar("tutti_as_task", default=None)


def waited(wait_s: float) -> float:
    """How long a tool call waits for its run: what it asked, within MAX_WAIT_S; nothing
    when it is answered with a task."""
    return 0.0 if AS_TASK.get() else min(wait_s, MAX_WAIT_S)


@dataclass
class ToolState:
    """What the tools work on; the server's lifespan builds it."""

    supervisor: RunSupervisor
    broker: SamplingBroker
    workspace: Path
    memory: AsyncMemoryFiles | None = None  # the memory tools' store (None: no memory tools)
    spec_limits: SpecLimits = DEFAULT_LIMITS  # TUTTI_MAX_SPEC_BYTES, TUTTI_MAX_SPEC_DEPTH
    asker: GateAsker | None = None  # asks approval gates by elicitation (None: client tasks)
    tasks: TaskStore | None = None  # MCP tasks (None: tool calls are never answered with one)
    # why `workspace` is fixed (TUTTI_WORKSPACE, --workspace); None: a client's roots choose
    # inside it (tools/workspace.py)
    workspace_fixed: str | None = None


def workspace_for(
    state: ToolState, spec: Mapping[str, Any] | str, roots: Sequence[str] | None
) -> Workspace:
    """Where a run of `spec` works, for a client with these roots (None: it offers none)."""
    return choose(spec, state.workspace, state.workspace_fixed, roots)


# -- specs -----------------------------------------------------------------------------------
async def load_spec_off_loop(
    state: ToolState, spec: Mapping[str, Any] | str, where: Workspace | None = None
) -> WorkflowSpec:
    """load_spec in a worker thread: YAML parsing runs at about 150 KB/s, and a spec at
    TUTTI_MAX_SPEC_BYTES would otherwise hold up every run and request for seconds."""
    found = None if where is None else where.spec_file
    return await anyio.to_thread.run_sync(
        load_spec, spec, state.workspace, state.spec_limits, found
    )


def check_inputs(state: ToolState, inputs: Mapping[str, Any] | None) -> None:
    """Input values are held to the spec's limits: they are stored and rendered as JSON (an
    integer of 5,000 digits cannot be printed back)."""
    if inputs:
        check_data(dict(inputs), "inputs", state.spec_limits)


async def plan(
    state: ToolState, spec: Mapping[str, Any] | str, roots: Sequence[str] | None = None
) -> PlanResult:
    where = workspace_for(state, spec, roots)
    planned = await state.supervisor.plan(await load_spec_off_loop(state, spec, where))
    wf, p, history = planned.workflow, planned.plan, planned.history
    d = p.to_dict()
    if planned.blocker is None:
        ready = "The spec is valid: call workflow_start with it to run it."
    else:  # a configuration gap, not a spec error: say so, keep the plan
        ready = f"The spec is valid but cannot run here yet: {planned.blocker}"
    return PlanResult(
        name=d["name"],
        mode=d["mode"],
        mode_reason=d["mode_reason"],
        steps={
            sid: {
                **step,
                "estimate_from": estimate_source(p.steps[sid], history),
                # what the Messages API gets concerns only the steps sent to it
                **(
                    {}
                    if wf.executors[sid] is ExecutorKind.PROMPT
                    else {"api_params": None, "api_params_why": None}
                ),
            }
            for sid, step in d["steps"].items()
        },
        groups=d["groups"],
        critical_path=d["critical_path"],
        critical_path_s=d["critical_path_s"],
        estimated_s=d["estimated_s"],
        estimated_speedup=d["estimated_speedup"],
        implicit_edges=d["implicit_edges"],
        mermaid=d["mermaid"],
        cost=planned.cost,
        history=history.summary(),
        workspace=where.as_dict(),
        next=ready,
    )


# -- shaping ---------------------------------------------------------------------------------
def preview(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= PREVIEW_CHARS:
        return value
    return text[:PREVIEW_CHARS] + f"... ({len(text)} chars; workflow_result has all of it)"


def _seconds(s: StepRecord) -> float | None:
    return None if s.duration_s is None else round(s.duration_s, 3)


def _client_task(s: StepRecord) -> ClientTask | None:
    req = s.request
    if s.status is not StepStatus.WAITING or not req:
        return None
    return ClientTask(
        step_id=s.step_id,
        instructions=req["instructions"],
        system=req.get("system"),
        inputs=req.get("inputs") or {},
        thinking=req.get("thinking"),
        output=req.get("output"),
    )


def client_tasks(run: RunRecord) -> list[ClientTask]:
    if run.status not in TAKES_RESULTS:
        return []  # a failed or cancelled run takes no results until it is resumed
    return [t for s in run.steps.values() if (t := _client_task(s)) is not None]


def run_state(
    state: ToolState,
    run: RunRecord,
    sampled: Sequence[str] = (),
    cls: type[RunState] = RunState,
    sampler: bool = True,
    **extra: Any,
) -> RunState:
    # One pass over the steps: every step_complete answer is shaped from the whole run, so
    # this runs once per step of a run and its cost grows with the run.
    steps: dict[str, str] = {}
    outputs: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    tasks: list[ClientTask] = []
    takes_results = run.status in TAKES_RESULTS  # a failed or cancelled run takes none
    added: dict[str, dict[str, int]] = {}
    done = 0
    for s in run.steps.values():
        status = s.status
        if s.parent is not None:  # counted under its step; listed only until it succeeds
            counts = added.setdefault(s.parent, {})
            counts[status.value] = counts.get(status.value, 0) + 1
        if s.parent is None or status not in _HAS_OUTPUT:
            steps[s.step_id] = status.value
        if status in _TERMINAL:
            done += 1
            if status in _HAS_OUTPUT and s.parent is None:  # theirs are in their step's
                outputs[s.step_id] = preview(s.output)
        elif takes_results and (task := _client_task(s)) is not None:
            tasks.append(task)
        if s.error:
            errors[s.step_id] = s.error
    error = run.error or state.supervisor.failure(run.id)
    pending = len(state.broker.pending(run.id))
    hint = next_step(run, tasks, pending, error, sampler)
    unsampled = [sid for sid, e in errors.items() if NO_SAMPLING in str(e)]
    if unsampled and not sampler:
        hint = (
            f"{', '.join(unsampled)} failed at once: they ask for a model through MCP "
            "sampling, and this client declared no sampling capability. " + hint
        )
    return cls(
        run_id=run.id,
        status=run.status.value,
        done=done,
        total=len(run.steps),
        steps=steps,
        outputs=outputs,
        errors=errors,
        client_tasks=tasks,
        added=added,
        error=error,
        next=(f"Answered {', '.join(sampled)} with your model. " if sampled else "") + hint,
        **extra,
    )


# -- the tools -------------------------------------------------------------------------------
def _needs_caller(state: ToolState, run_id: str) -> Callable[[RunRecord], bool]:
    sup, broker = state.supervisor, state.broker
    return lambda r: sup.resting(r) or bool(broker.pending(run_id))


async def start(
    state: ToolState,
    spec: Mapping[str, Any] | str,
    inputs: Mapping[str, Any] | None,
    wait_s: float,
    *,
    can_sample: bool,
    progress: ReportProgress | None = None,
    bind: Callable[[str], None] | None = None,
    roots: Sequence[str] | None = None,
) -> RunState:
    sup = state.supervisor
    where = workspace_for(state, spec, roots)
    wf = sup.compile(await load_spec_off_loop(state, spec, where))
    check_inputs(state, inputs)
    needs = wf.on(ExecutorKind.SAMPLING)
    if needs and not can_sample:
        raise ClientCannotSample(needs, NO_SAMPLING)
    run_id = await sup.start(wf, inputs, before=bind, workspace=str(where.path))
    run = await sup.wait(run_id, _needs_caller(state, run_id), waited(wait_s), progress)
    return run_state(state, run)


async def wait_for_caller(
    state: ToolState, run_id: str, wait_s: float, progress: ReportProgress | None = None
) -> RunRecord:
    """workflow_status's wait: until anything changes or the run needs the caller."""
    return await state.supervisor.wait(
        run_id, _needs_caller(state, run_id), min(wait_s, MAX_WAIT_S), progress, any_change=True
    )


async def status(
    state: ToolState,
    run_id: str,
    wait_s: float,
    *,
    progress: ReportProgress | None = None,
    sampled: Sequence[str] = (),
    sampler: bool = True,
) -> RunState:
    """`sampler`: whether the caller offers MCP sampling (the `next` hint says so if not)."""
    run = await wait_for_caller(state, run_id, wait_s, progress)
    figures = await pipeline_figures(state.supervisor.engine.store, run)
    return run_state(state, run, sampled, pipelines=figures, sampler=sampler)


async def result(state: ToolState, run_id: str) -> RunResult:
    run = await state.supervisor.snapshot(run_id)
    error = run.error or state.supervisor.failure(run_id)
    recovery = recovery_plan(run)
    if recovery is not None:
        recovery["command"] = f"workflow_resume('{run_id}')"
    return RunResult(
        run_id=run.id,
        name=run.name,
        status=run.status.value,
        error=error,
        inputs=run.inputs,
        outputs={s.step_id: s.output for s in run.steps.values() if s.status.has_output},
        steps={
            s.step_id: {
                "status": s.status.value,
                "attempts": s.attempts,
                "seconds": _seconds(s),
                "executor": s.executor,
                "output": s.output,
                "error": s.error,
                "usage": s.usage,
                **({"detail": s.detail} if s.detail else {}),
            }
            for s in run.steps.values()
        },
        metrics=run.metrics,
        recovery=recovery,
        pipelines=await pipeline_figures(state.supervisor.engine.store, run, dead_letters=True),
        parent_run_id=run.parent_run_id,
        next=next_step(run, client_tasks(run), len(state.broker.pending(run_id)), error),
    )


async def cancel(state: ToolState, run_id: str) -> Cancelled:
    run = await state.supervisor.cancel(run_id)
    stopped = [s.step_id for s in run.steps.values() if s.status is StepStatus.CANCELLED]
    return Cancelled(
        run_id=run_id,
        status=run.status.value,
        cancelled=stopped,
        next=f"Finished steps keep their results; workflow_resume('{run_id}') continues the run.",
    )


async def resume(
    state: ToolState,
    run_id: str,
    from_step: str | None,
    inputs: Mapping[str, Any] | None,
    wait_s: float,
    *,
    progress: ReportProgress | None = None,
    bind: Callable[[str], None] | None = None,
) -> Resumed:
    sup = state.supervisor
    if from_step is None and not inputs:
        run = await sup.resume(run_id, before=bind)
        new_id, forked_from = run_id, None
        kept = [s.step_id for s in run.steps.values() if s.status.has_output and s.seq is not None]
    else:
        check_inputs(state, inputs)
        new_id, kept = await sup.fork(run_id, from_step, inputs, before=bind)
        forked_from = run_id
    run = await sup.wait(new_id, _needs_caller(state, new_id), waited(wait_s), progress)
    return run_state(  # type: ignore[return-value]
        state,
        run,
        cls=Resumed,
        forked_from=forked_from,
        parent_run_id=run.parent_run_id,
        kept=kept,
    )


async def complete(
    state: ToolState,
    run_id: str,
    step_id: str,
    output: Any,
    error: str | None,
    *,
    progress: ReportProgress | None = None,
    bind: Callable[[str], None] | None = None,
) -> RunState:
    if error is not None and output is not None:
        raise StepResultConflict(step_id)
    if error is None and output is None:
        raise StepResultMissing(step_id)
    sup = state.supervisor
    await sup.complete(run_id, step_id, output, error, before=bind)
    run = await sup.wait(run_id, _needs_caller(state, run_id), waited(COMPLETE_WAIT_S), progress)
    return run_state(state, run)


async def list_runs(state: ToolState, status: str | None, limit: int) -> RunList:
    wanted = None
    if status is not None:
        try:
            wanted = RunStatus(status)
        except ValueError:
            raise UnknownRunStatus(status, [s.value for s in RunStatus]) from None
    runs = await state.supervisor.list_runs(wanted, limit)
    return RunList(
        runs=[
            RunSummary(
                run_id=r.id,
                name=r.name,
                status=r.status.value,
                steps=(r.metrics or {}).get("steps"),
                created_at=r.created_at,
                parent_run_id=r.parent_run_id,
                error=r.error,
            )
            for r in runs
        ]
    )


async def checkpoints(state: ToolState, run_id: str) -> CheckpointList:
    cps = await state.supervisor.checkpoints(run_id)
    return CheckpointList(
        run_id=run_id,
        checkpoints=[
            CheckpointInfo(
                step_id=c.step_id,
                seq=c.seq,
                status=c.status.value,
                seconds=None if c.started_at is None else round(c.finished_at - c.started_at, 3),
                output=preview(c.output),
            )
            for c in cps
        ],
    )
