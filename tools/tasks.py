"""MCP tasks backed by durable runs, as plain functions over the tool state and the task
store; server/tasks_ext.py puts them on the wire for both protocol generations.

The task is the run: its status follows the run's, the steps the run hands to the client
(client steps, approval gates) and its parked sampling requests are what the task waits on
(`input_required`), cancelling it cancels the run, and its result is `workflow_result`'s
answer. A task found on an interrupted run (its server died) resumes the run: that is how a
task survives a restart.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import anyio

from tutti_mcp.engine.errors import RunStateError, TuttiError
from tutti_mcp.engine.executors.sampling import SamplingRequest
from tutti_mcp.engine.supervisor import TAKES_RESULTS, ReportProgress, RunSupervisor
from tutti_mcp.memory.runs.owner import owner_alive
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus
from tutti_mcp.memory.runs.tasks import TaskRecord, TaskStore
from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.results import RunResult

# The tools that start or carry on work, and so may answer with a task.
TASK_TOOLS = frozenset({"workflow_start", "workflow_resume", "step_complete"})
POLL_IDLE_S = 1.0  # how often a wait looks again at a run no process here executes
WATCH_S = 30.0  # a watcher of a run executing here looks again at least this often


class TaskStatus(StrEnum):
    WORKING = "working"
    INPUT_REQUIRED = "input_required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskNotFound(TuttiError, LookupError):
    def __init__(self, task_id: str, expired: bool = False) -> None:
        self.task_id = task_id
        why = "has expired (past its ttl)" if expired else "is not known here"
        super().__init__(
            f"task {task_id!r} {why}; tasks/list lists the tasks, workflow_list the runs"
        )


class TaskFinished(TuttiError):
    def __init__(self, task_id: str, status: TaskStatus) -> None:
        super().__init__(f"cannot cancel task {task_id!r}: already in terminal status {status}")


@dataclass(frozen=True)
class Ask:
    """Something the task waits on from its client: a step handed to it (`step`, a gate is
    one too) or a parked sampling request (`sample`). `key` names it for the lifetime of
    the task: a step handed out again (a new attempt) gets a new key."""

    key: str
    step_id: str
    step: StepRecord | None = None
    sample: SamplingRequest | None = None

    @property
    def gate(self) -> dict[str, Any] | None:
        return None if self.step is None else self.step.request.get("approval")


@dataclass(frozen=True)
class TaskView:
    """A task as a client sees it now."""

    task: TaskRecord
    status: TaskStatus
    message: str
    updated_at: float
    result: dict[str, Any] | None = None  # the CallToolResult of a finished task, as JSON
    error: str | None = None  # why it failed outside a tool result (it could not resume)
    asks: list[Ask] = field(default_factory=list)


@dataclass
class TaskSettings:
    ttl_ms: int | None = 86_400_000  # the most a task is kept (None: as long as its run)
    poll_ms: int = 500  # the polling interval suggested to clients


# -- creating --------------------------------------------------------------------------------
def granted_ttl(requested: int | None, cap: int | None) -> int | None:
    """The ttl a task gets: what the client asked for, within the server's cap."""
    if requested is None or requested <= 0:
        return cap
    return requested if cap is None else min(requested, cap)


async def create(
    tasks: TaskStore,
    tool: str,
    answer: Mapping[str, Any],
    ttl_ms: int | None,
    task_id: str | None = None,
) -> TaskRecord:
    """The task for a tool call that answered `answer` (its CallToolResult as JSON): the
    task of the run it started or carried on, or, when it failed before making a run, a
    failed task holding that answer (it is what the call would have returned)."""
    structured = answer.get("structuredContent")
    run_id = structured.get("run_id") if isinstance(structured, dict) else None
    if answer.get("isError") or not isinstance(run_id, str):
        return await tasks.create(
            None, tool, ttl_ms, result=dict(answer), final="failed", task_id=task_id
        )
    return await tasks.create(run_id, tool, ttl_ms, task_id=task_id)


# -- reading ---------------------------------------------------------------------------------
async def load(tasks: TaskStore, task_id: str, now: float | None = None) -> TaskRecord:
    task = await tasks.get(task_id)
    if task is None:
        raise TaskNotFound(task_id)
    if task.expired(time.time() if now is None else now):
        raise TaskNotFound(task_id, expired=True)
    return task


def _updated(run: RunRecord, task: TaskRecord) -> float:
    times = [task.created_at, run.created_at, run.started_at or 0.0, run.finished_at or 0.0]
    for s in run.steps.values():
        times.append(s.finished_at or s.started_at or 0.0)
    return max(times)


def asks_of(state: wfl.ToolState, run: RunRecord) -> list[Ask]:
    asks = [
        Ask(f"step:{s.step_id}:{s.request.get('attempt', s.attempts)}", s.step_id, step=s)
        for s in run.steps.values()
        if s.status is StepStatus.WAITING and s.request and run.status in TAKES_RESULTS
    ]
    asks += [
        Ask(f"sample:{r.step_id}:{r.key}", r.step_id, sample=r)
        for r in state.broker.pending(run.id)
    ]
    return asks


def result_of(answer: RunResult, failed: bool) -> dict[str, Any]:
    """`workflow_result`'s answer as the tool result a finished task gives."""
    return {
        "content": [{"type": "text", "text": answer.model_dump_json()}],
        "structuredContent": answer.model_dump(mode="json"),
        "isError": failed,
    }


def _here(sup: RunSupervisor, run_id: str) -> bool:
    """The run executes in this process, or is launched here and about to."""
    watch = sup.watches.get(run_id)
    return sup.live(run_id) or (watch is not None and not watch.finished)


def _stopped_elsewhere(sup: RunSupervisor, run: RunRecord) -> bool:
    """Nobody executes the run although it should be going on: its process died (found
    at start-up, or since)."""
    if _here(sup, run.id):
        return False
    if run.status is RunStatus.INTERRUPTED:
        return True
    return run.status is RunStatus.RUNNING and not owner_alive(run.owner)


async def view(
    state: wfl.ToolState,
    tasks: TaskStore,
    task_id: str,
    *,
    bind: Callable[[str], None] | None = None,
    resume: bool = True,
    extension: bool = False,
) -> TaskView:
    """The task now. A task whose run was interrupted resumes it here first (`bind`: the
    client the resumed run's sampling steps and gates ask), unless `resume` is False.
    `extension`: for a client of the 2026-07-28 tasks extension (it answers parked requests
    with tasks/update), else of 2025-11-25 core tasks (the server asks it by sampling)."""
    task = await load(tasks, task_id)
    if task.run_id is None:  # failed before it had a run: its answer is all there is
        return TaskView(task, TaskStatus.FAILED, _text(task.result), task.created_at, task.result)
    sup = state.supervisor
    run = await sup.snapshot(task.run_id)
    note = ""
    if resume and task.final is None and _stopped_elsewhere(sup, run):
        try:
            await sup.resume(run.id, before=bind)
            note = "resumed after its server stopped; committed steps are kept. "
        except RunStateError:
            pass  # claimed meanwhile by another process or call: it runs there
        except TuttiError as exc:  # it cannot run here (a configuration gap)
            return await _seal(
                tasks,
                TaskView(
                    task,
                    TaskStatus.FAILED,
                    f"run {run.id} was interrupted and cannot be resumed here: {exc}",
                    time.time(),
                    error=str(exc),
                ),
            )
        run = await sup.snapshot(task.run_id)
    return await _seal(tasks, await _of_run(state, task, run, note, extension))


def _sampling_hint(state: wfl.ToolState, run_id: str, parked: int, extension: bool) -> str:
    """What a tasks client does about the run's steps that wait for its model."""
    if parked and extension:
        return (
            f"{parked} step(s) wait for your model: their sampling requests are in this task's "
            "inputRequests; answer them with tasks/update."
        )
    if parked:  # a 2025-11-25 client whose connection had no back-channel when it was bound
        return (
            f"{parked} step(s) wait for your model, and the server cannot ask your client over "
            f"this connection: call workflow_status('{run_id}') to answer them."
        )
    asked = state.broker.asking(run_id)
    return (
        f"{asked} step(s) wait for your model: the server has asked your client by MCP "
        "sampling (sampling/createMessage, with this task's id in its related-task _meta); "
        "the task goes on once it answers."
    )


async def _of_run(
    state: wfl.ToolState, task: TaskRecord, run: RunRecord, note: str, extension: bool
) -> TaskView:
    rid, updated = run.id, _updated(run, task)
    final = TaskStatus(task.final) if task.final else None
    status = run.status
    if final is TaskStatus.CANCELLED or (final is None and status is RunStatus.CANCELLED):
        return TaskView(task, TaskStatus.CANCELLED, f"run {rid} was cancelled", updated)
    if final is not None or status.finished:  # its result: with_result
        failed = final is TaskStatus.FAILED or (final is None and status is RunStatus.FAILED)
        message = wfl.next_step(run, [], 0, None)
        error = run.error or state.supervisor.failure(rid)
        if failed and error:
            message = f"{error}. {message}"
        kind = TaskStatus.FAILED if failed else TaskStatus.COMPLETED
        return TaskView(task, kind, message, updated)
    asks = asks_of(state, run)
    done = sum(1 for s in run.steps.values() if s.status.terminal)
    progress = f"run {rid}: {done}/{len(run.steps)} steps done. "
    parked, asked = len(state.broker.pending(rid)), state.broker.asking(rid)
    if asks or asked:
        # a request the server has sent its client by sampling is input the task waits on
        # too (2025-11-25), though not one of its input requests
        waiting = wfl.client_tasks(run)
        hints = [wfl.next_step(run, waiting, 0, None)] if waiting else []
        if parked or asked:
            hints.append(_sampling_hint(state, rid, parked, extension))
        message = note + progress + " ".join(hints)
        return TaskView(task, TaskStatus.INPUT_REQUIRED, message, updated, asks=asks)
    if status in (RunStatus.WAITING, RunStatus.INTERRUPTED, RunStatus.PENDING) and not _here(
        state.supervisor, rid
    ):
        # nothing executes it and nothing is asked of the client: it waits for a resume
        hint = f"run {rid} is {status.value}: workflow_resume('{rid}') continues it"
        return TaskView(task, TaskStatus.WORKING, note + progress + hint, updated)
    return TaskView(task, TaskStatus.WORKING, note + progress.rstrip(), updated)


async def with_result(state: wfl.ToolState, v: TaskView) -> TaskView:
    """The view with the tool result of its finished run (`workflow_result`'s answer; an
    error result unless the run succeeded). Built on demand: for a long run it is large."""
    if v.result is not None or v.task.run_id is None or not v.status.terminal:
        return v
    answer = await wfl.result(state, v.task.run_id)
    return replace(v, result=result_of(answer, failed=v.status is not TaskStatus.COMPLETED))


async def _seal(tasks: TaskStore, v: TaskView) -> TaskView:
    if v.status.terminal and v.task.final is None:
        await tasks.seal(v.task.id, v.status.value, v.updated_at)
    return v


def _text(result: Mapping[str, Any] | None) -> str:
    for block in (result or {}).get("content") or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            return str(block["text"])
    return "the tool call failed"


async def page(
    state: wfl.ToolState, tasks: TaskStore, limit: int, before: tuple[float, str] | None
) -> list[TaskView]:
    """A page of tasks, newest first (expired ones are dropped first). Listing resumes no
    run: a task asked about on its own does."""
    await tasks.drop_expired(time.time())
    return [await view(state, tasks, t.id, resume=False) for t in await tasks.page(limit, before)]


async def wait_finished(
    state: wfl.ToolState,
    tasks: TaskStore,
    task_id: str,
    timeout_s: float,
    progress: ReportProgress | None = None,
) -> TaskView:
    """Wait up to `timeout_s` for the task to reach a terminal status; the view then."""
    current = await view(state, tasks, task_id)
    deadline = time.monotonic() + timeout_s
    while not current.status.terminal and current.task.run_id is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        run_id = current.task.run_id
        await state.supervisor.wait(run_id, lambda r: r.status.finished, left, progress)
        before = current
        current = await view(state, tasks, task_id)
        if current.status == before.status and not _here(state.supervisor, run_id):
            # nothing here executes it (it waits for a step_complete, or runs in another
            # process): look again in a while
            await anyio.sleep(max(0.0, min(POLL_IDLE_S, deadline - time.monotonic())))
    return current


def _state_of(v: TaskView) -> tuple[TaskStatus, tuple[str, ...]]:
    return v.status, tuple(a.key for a in v.asks)


async def _either(events: list[anyio.Event], timeout_s: float) -> None:
    """Until one of `events` is set, or `timeout_s` has passed."""
    with anyio.move_on_after(timeout_s):
        async with anyio.create_task_group() as tg:

            async def wake(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            for event in events:
                tg.start_soon(wake, event)


async def changes(
    state: wfl.ToolState,
    tasks: TaskStore,
    task_id: str,
    *,
    extension: bool = False,
    seen: tuple[TaskStatus, tuple[str, ...]] | None = None,
) -> AsyncIterator[TaskView]:
    """The task each time its status or what it asks of its client changes (`seen`: the
    state the client knows already), until it is terminal. Resumes no run. Ends quietly
    when the task expires."""
    sup, last = state.supervisor, seen
    while True:
        try:
            task = await load(tasks, task_id)
        except TaskNotFound:
            return
        run_id = task.run_id or ""
        # the events to wait on are taken before the look, so no change falls between them
        watch = sup.watches.get(run_id)
        events = [state.broker.moved] + ([watch.changed] if watch is not None else [])
        v = await view(state, tasks, task_id, resume=False, extension=extension)
        if _state_of(v) != last:
            last = _state_of(v)
            yield v
        if v.status.terminal:
            return
        # a run nothing here executes changes in another process, or not until resumed
        await _either(events, WATCH_S if _here(sup, run_id) else POLL_IDLE_S)


# -- steering --------------------------------------------------------------------------------
async def cancel(state: wfl.ToolState, tasks: TaskStore, task_id: str) -> TaskView:
    """Cancel the task's run; the task is then `cancelled` for good."""
    current = await view(state, tasks, task_id)
    if current.status.terminal:
        raise TaskFinished(task_id, current.status)
    assert current.task.run_id is not None  # a task without a run is terminal
    run = await state.supervisor.cancel(current.task.run_id)
    at = run.finished_at or time.time()
    await tasks.seal(task_id, TaskStatus.CANCELLED.value, at)
    return TaskView(current.task, TaskStatus.CANCELLED, f"run {run.id} was cancelled", at)


async def answer(
    state: wfl.ToolState,
    tasks: TaskStore,
    task_id: str,
    responses: Mapping[str, Mapping[str, Any]],
    *,
    bind: Callable[[str], None] | None = None,
    sample: Callable[[str, str, Mapping[str, Any]], None] | None = None,
) -> list[str]:
    """Answer what the task waits on: each response under the key of an ask that is still
    open (others are ignored, as the tasks extension asks). A step's answer goes where
    step_complete's goes; a sampling reply to `sample(run_id, step_id, reply)`. Returns the
    keys answered."""
    current = await view(state, tasks, task_id, bind=bind)
    open_asks = {a.key: a for a in current.asks}
    run_id = current.task.run_id
    done: list[str] = []
    for key, response in responses.items():
        ask = open_asks.get(key)
        if ask is None or run_id is None:
            continue
        if ask.sample is not None:
            if sample is not None:
                sample(run_id, ask.step_id, response)
                done.append(key)
            continue
        report = step_report(ask, response)
        if report is None:
            continue  # dismissed: the step keeps waiting
        output, error = report
        await state.supervisor.complete(run_id, ask.step_id, output, error, before=bind)
        done.append(key)
    if done:
        state.supervisor.notify(run_id or "")
    return done


def step_report(ask: Ask, response: Mapping[str, Any]) -> tuple[Any, str | None] | None:
    """A step's (output, error) from an elicitation result; None when dismissed (`cancel`).
    A gate: accept gives the form's yes or no, decline a no. A client step: accept gives the
    form's `output` (or its `error`), decline an error."""
    action = response.get("action")
    content = response.get("content") or {}
    if action == "cancel" or not isinstance(content, Mapping):
        return None
    if ask.gate is not None:
        if action != "accept" or not isinstance(content.get("approve"), bool):
            return {"approve": False, "note": f"{action or 'declined'} in the client"}, None
        note = content.get("note")
        return {"approve": content["approve"], **({"note": note} if note else {})}, None
    if action != "accept":
        return None, str(content.get("error") or "the client declined the step")
    if content.get("error"):
        return None, str(content["error"])
    return content.get("output", ""), None
