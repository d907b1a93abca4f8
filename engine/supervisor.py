"""Runs that outlive the call that started them.

A server starts runs in a task group it owns for its whole life, so a tool call returns
while its run goes on. Callers watch a run through a change notification that fires
whenever a step finishes or starts waiting, or the run ends.
Shutting the task group down leaves running runs `interrupted`, and resumable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from tutti_mcp.engine.errors import (
    ConfigurationError,
    RunStateError,
    TuttiError,
)
from tutti_mcp.engine.execution.context import PreparedRun
from tutti_mcp.engine.plan import Plan, estimate_cost
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import WorkflowSpec
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.history import WorkflowHistory
from tutti_mcp.memory.runs.owner import owner_alive
from tutti_mcp.memory.runs.records import Checkpoint, EventKind, RunRecord, RunStatus

log = logging.getLogger("tutti.supervisor")

# Events that change what a watcher sees: a step settles or waits, the run ends.
_CHANGES = frozenset(
    {
        EventKind.STEP_SUCCEEDED,
        EventKind.STEP_DEGRADED,
        EventKind.STEP_FAILED,
        EventKind.STEP_SKIPPED,
        EventKind.STEP_WAITING,
        EventKind.RUN_SUCCEEDED,
        EventKind.RUN_FAILED,
        EventKind.RUN_CANCELLED,
        EventKind.RUN_INTERRUPTED,
        EventKind.RUN_WAITING,
    }
)
ReportProgress = Callable[[int, int, str], Awaitable[None]]
# A run of quick steps changes thousands of times a second; a client needs far fewer updates.
PROGRESS_EVERY_S = 0.1


# Runs whose client tasks are open: completing one carries the run on.
TAKES_RESULTS = frozenset({RunStatus.RUNNING, RunStatus.WAITING, RunStatus.INTERRUPTED})


@dataclass(frozen=True)
class PlannedSpec:
    workflow: Workflow
    plan: Plan
    history: WorkflowHistory
    cost: dict[str, Any]  # estimate_cost's range for the steps on the Anthropic API
    blocker: str | None  # why it cannot run here yet (None: it can)


@dataclass
class _Watch:
    """What watchers of one run started here wait on."""

    last: str = "started"
    error: str | None = None  # the run could not execute at all
    finished: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)
    executing: anyio.Event = field(default_factory=anyio.Event)  # set once live, or finished
    changes: int = 0  # bumps so far: a wake-up without one brought pipeline figures only
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # pipeline step: latest

    def on_event(self, kind: EventKind, step_id: str | None, data: dict[str, Any]) -> None:
        if kind is EventKind.RUN_STARTED:
            self.executing.set()
        if kind in _CHANGES:
            self.last = f"{step_id} {kind[5:]}" if step_id else f"run {kind[4:]}"
            self.bump()
        elif kind is EventKind.PIPELINE_PROGRESS and step_id is not None:
            self.figures[step_id] = data  # told to progress listeners; not a change
            self._wake()

    def bump(self) -> None:
        self.changes += 1
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def progress(self, run: RunRecord, message: str) -> tuple[int, int, str]:
        """Progress as (done, total so far, message): settled steps, and the items the
        run's pipelines finished (total: and those in flight or waiting for the client);
        the message adds each pipeline's figures."""
        done, total = _settled(run), len(run.steps)
        told = [message] if message else []
        for sid, f in self.figures.items():
            finished = int(f.get("items", 0)) + int(f.get("items_dead", 0))
            outstanding = int(f.get("in_flight", 0)) + int(f.get("waiting", 0))
            done, total = done + finished, total + finished + outstanding
            stages = ", ".join(f"{s['id']} {s.get('done', 0)}" for s in f.get("stages", []))
            told.append(
                f"{sid}: {f.get('items', 0)} item(s) done, {f.get('items_dead', 0)} dead, "
                f"{f.get('in_flight', 0)} in flight, {f.get('waiting', 0)} waiting for the "
                f"client (done by stage: {stages})"
            )
        return done, total, "; ".join(told)


def _settled(run: RunRecord) -> int:
    return sum(1 for s in run.steps.values() if s.status.terminal)


def fingerprint(run: RunRecord) -> tuple[Any, ...]:
    return (run.status, tuple(s.status for s in run.steps.values()))


class RunSupervisor:
    def __init__(
        self,
        engine: Engine,
        tg: TaskGroup,
        poll_s: float = 0.5,
        on_stopped: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.tg = tg
        self.poll_s = poll_s  # for runs executing in another process
        self.on_stopped = on_stopped  # told when a run stops executing here
        self.watches: dict[str, _Watch] = {}

    # -- starting --------------------------------------------------------------------------
    # `before` is called with the run id just before the run starts executing.
    async def start(
        self,
        spec: Workflow | WorkflowSpec | Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        before: Callable[[str], None] | None = None,
        workspace: str | None = None,  # where the run works (None: the engine's)
    ) -> str:
        prepared = await self.engine.create(spec, inputs, workspace=workspace)
        self._launch(prepared, before)
        return prepared.run_id

    async def resume(self, run_id: str, before: Callable[[str], None] | None = None) -> RunRecord:
        """Claim the run (so that from the answer on, everyone reads it `running`), then
        launch it."""
        prepared = await self.engine.claim(run_id)
        self._launch(prepared, before)
        return prepared.run

    async def fork(
        self,
        run_id: str,
        from_step: str | None,
        inputs: Mapping[str, Any] | None,
        before: Callable[[str], None] | None = None,
    ) -> tuple[str, list[str]]:
        new_id, kept = await self.engine.fork(run_id, from_step=from_step, inputs=inputs)
        self._launch(new_id, before)
        return new_id, kept

    def _launch(self, run: str | PreparedRun, before: Callable[[str], None] | None) -> None:
        run_id = run if isinstance(run, str) else run.run_id
        if before is not None:
            before(run_id)
        watch = self.watches[run_id] = _Watch()
        self.tg.start_soon(self._execute, run, watch, name=f"run {run_id}")

    async def _execute(self, run: str | PreparedRun, watch: _Watch) -> None:
        run_id = run if isinstance(run, str) else run.run_id
        try:
            await self.engine.execute(run, attached=True, on_event=watch.on_event)
        except TuttiError as exc:
            watch.error = str(exc)
            log.warning("run %s could not execute: %s", run_id, exc)
        except Exception as exc:  # a bug: keep the server up, say what happened
            watch.error = f"internal error: {type(exc).__name__}: {exc}"
            log.exception("run %s crashed", run_id)
        finally:
            watch.finished = True
            watch.executing.set()
            watch.bump()
            if self.on_stopped is not None:
                self.on_stopped(run_id)
            # the store has the rest: keep only what it lacks (and not a newer launch's watch)
            if watch.error is None and self.watches.get(run_id) is watch:
                del self.watches[run_id]

    async def complete(
        self,
        run_id: str,
        step_id: str,
        output: Any,
        error: str | None,
        before: Callable[[str], None] | None = None,
    ) -> None:
        """A client step's result. The run carries on: at once when it executes here; a
        run no live process executes is resumed here (a process executing it elsewhere
        picks the result up from the store)."""
        await self.engine.complete_step(run_id, step_id, output=output, error=error)
        if self.live(run_id):
            return
        run = await self.engine.load(run_id)
        if run.status in TAKES_RESULTS:
            with suppress(RunStateError):  # claimed meanwhile by someone else: theirs now
                await self.resume(run_id, before)

    # -- steering --------------------------------------------------------------------------
    async def cancel(self, run_id: str, wait_s: float = 5.0) -> RunRecord:
        """Cancel a run: a live one stops its running steps (recorded cancelled); a run
        no process executes (interrupted, waiting, failed) is marked cancelled."""
        watch = self.watches.get(run_id)
        if watch is not None:
            # launched here and claimed, but its steps may not be under way yet (a cancel
            # then would be lost): wait until they are
            with anyio.move_on_after(wait_s):
                await watch.executing.wait()
        if self.engine.cancel(run_id):
            await self.wait(run_id, lambda r: r.status.finished, wait_s)
            return await self.engine.load(run_id)
        run = await self.engine.load(run_id)
        if run.status.finished:
            raise RunStateError(f"run {run_id} already {run.status.value}; nothing to cancel")
        if run.status is RunStatus.RUNNING and owner_alive(run.owner):
            raise RunStateError(
                f"run {run_id} is executing in another process ({run.owner}); stop it there "
                "(Ctrl-C in the terminal running it)"
            )
        await self.engine.store.set_run(
            run_id, status=RunStatus.CANCELLED, error="cancelled on request", owner=None
        )
        return await self.engine.load(run_id)

    # -- reading -----------------------------------------------------------------------------
    def compile(self, spec: WorkflowSpec | Mapping[str, Any]) -> Workflow:
        return self.engine.compile(spec)

    async def plan(self, spec: Workflow | WorkflowSpec | Mapping[str, Any]) -> PlannedSpec:
        """A spec's plan, cost range, history, and what keeps it from running here (None:
        nothing)."""
        engine = self.engine
        wf = engine.compile(spec)
        plan, history = await engine.plan_with_history(wf)
        try:
            engine.preflight(wf)
            blocker = None
        except ConfigurationError as exc:  # a configuration gap, not a spec error
            blocker = str(exc)
        cost = estimate_cost(wf, plan, engine.config.models)
        return PlannedSpec(wf, plan, history, cost, blocker)

    async def load(self, run_id: str) -> RunRecord:
        return await self.engine.load(run_id)

    async def list_runs(self, status: RunStatus | None, limit: int) -> list[RunRecord]:
        return await self.engine.store.list_runs(status, limit)

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        await self.engine.load(run_id)  # a clear error for an unknown run
        return await self.engine.store.checkpoints(run_id)

    # -- watching --------------------------------------------------------------------------
    def live(self, run_id: str) -> bool:
        return run_id in self.engine.live

    async def snapshot(self, run_id: str) -> RunRecord:
        """The run as it is now: the live mirror when it executes here, else the store."""
        execution = self.engine.live.get(run_id)
        if execution is None:
            launched = self.watches.get(run_id)
            run = await self.engine.load(run_id)
            execution = self.engine.live.get(run_id)  # it may have started meanwhile
            if execution is None:
                if launched is not None and launched.finished:  # and ended while we read
                    return await self.engine.load(run_id)
                watch = self.watches.get(run_id)
                if watch is not None and not watch.finished:
                    run.status = RunStatus.RUNNING  # launched here, its execution starting
                return run
        return execution.run

    def notify(self, run_id: str) -> None:
        """Something outside the engine changed what waiters of this run should see."""
        watch = self.watches.get(run_id)
        if watch is not None:
            watch.bump()

    def resting(self, run: RunRecord) -> bool:
        """Nothing more happens without the caller: the run finished or stopped, or all
        that is left waits on client steps."""
        execution = self.engine.live.get(run.id)
        if execution is not None:
            return execution.blocked_on_client
        watch = self.watches.get(run.id)
        if watch is not None and not watch.finished:
            return False  # launched here, not executing yet
        return not (run.status is RunStatus.RUNNING and owner_alive(run.owner))

    def failure(self, run_id: str) -> str | None:
        """Why a run started here could not execute at all, if it could not."""
        watch = self.watches.get(run_id)
        return watch.error if watch else None

    async def wait(
        self,
        run_id: str,
        until: Callable[[RunRecord], bool],
        timeout_s: float,
        progress: ReportProgress | None = None,
        *,
        any_change: bool = False,
    ) -> RunRecord:
        """Wait up to `timeout_s` until `until(run)` holds (or, with `any_change`, until
        anything changes), reporting progress at most every PROGRESS_EVERY_S. Runs executing
        in another process are watched by polling the store."""
        run = await self.snapshot(run_id)
        if until(run) or timeout_s <= 0:
            return run
        reported = 0.0
        seen = fingerprint(run)
        told = 0  # the progress last reported: never less after it
        with anyio.move_on_after(timeout_s):
            while True:
                watch = self.watches.get(run_id)
                if watch is not None and (self.live(run_id) or not watch.finished):
                    # Look again after taking the event: a change made while this waiter was
                    # busy (reporting progress, say) bumped an event it was not waiting on.
                    changed, changes = watch.changed, watch.changes
                    run = await self.snapshot(run_id)
                    if until(run) or (any_change and fingerprint(run) != seen):
                        break
                    await changed.wait()
                    if watch.changes == changes:  # a pipeline's figures: told, waited on
                        now = time.monotonic()
                        if progress is not None and now - reported >= PROGRESS_EVERY_S:
                            reported = now
                            done, total, text = watch.progress(run, "")
                            told = max(told, done)
                            await progress(told, max(total, told), text)
                        continue
                    message = watch.last
                elif run.status is RunStatus.RUNNING and owner_alive(run.owner):
                    before = fingerprint(run)
                    while fingerprint(run) == before:
                        await anyio.sleep(self.poll_s)
                        run = await self.engine.load(run_id)
                    message = "changed in another process"
                else:
                    break  # nothing executes it: nothing will change
                run = await self.snapshot(run_id)
                done = any_change or until(run)
                now = time.monotonic()
                if progress is not None and (done or now - reported >= PROGRESS_EVERY_S):
                    reported = now
                    watch = self.watches.get(run_id)
                    count, total, text = (
                        watch.progress(run, message)
                        if watch is not None
                        else (_settled(run), len(run.steps), message)
                    )
                    told = max(told, count)
                    await progress(told, max(total, told), text)
                if done:
                    break
        return await self.snapshot(run_id)
