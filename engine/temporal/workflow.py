"""The one generic Temporal workflow a tutti run is: tutti's own Engine and runner, over an
in-memory run store that lives in the workflow (rebuilt by replay from the event history),
with each step's attempt an activity on a worker.

Determinism: the runner reads time from the workflow's clock and randomness from its
seeded random; templates render on the event loop bounded by operations only
(RENDER_INLINE); nothing here touches files, threads or the network. Workers run with
PYTHONHASHSEED=0 (`tutti worker` sees to it), so even the order of a set is the same on
every worker that replays a run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import StepError, StepErrorKind, TuttiError
from tutti_mcp.engine.executors.base import StepCall, StepExecutor, StepOutcome
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.executors.gate import GateExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.templating import RENDER_INLINE
from tutti_mcp.engine.temporal.activities import STEP_ACTIVITY
from tutti_mcp.engine.temporal.codec import (
    STEP_ERROR,
    call_to_json,
    error_from_json,
    from_wire,
    outcome_from_json,
    run_to_json,
    to_wire,
)
from tutti_mcp.engine.temporal.seeds import plant, seed_of
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord

RUN_WORKFLOW = "tutti.run"
ROLL_REASON = "the run's Temporal history is long: it goes on in a new execution"
# Steps that run on workers; client steps and gates are handed to the caller from the
# workflow itself, and answered by the `complete_step` update.
WORKER_KINDS = (ExecutorKind.BUILTIN, ExecutorKind.SHELL, ExecutorKind.PROMPT)


@dataclass
class WorkflowSetup:
    """What every run's workflow on this worker is built with (the worker's settings). Every
    worker of a task queue must be set up alike: a replay elsewhere must decide the same."""

    models: ModelTable = field(default_factory=ModelTable)
    max_concurrency: int = 64
    executor_limits: dict[ExecutorKind, int] | None = None
    heartbeat_s: float = 30.0  # a worker silent this long is taken for dead
    activity_attempts: int = 10  # tries of a step's attempt when its worker dies
    # A run whose history grows past this many events goes on in a new execution (Temporal
    # refuses a history past 51,200 events; a step costs about 4).
    roll_at_events: int = 40_000


SETUP = WorkflowSetup()  # replaced by the worker before it polls


class ActivityExecutor:
    """A step's attempt as an activity, on whichever worker takes it."""

    # The activity times the step itself (engine/temporal/activities.py): a timer in the
    # workflow per attempt would add two events to the history of every step.
    times_itself = True

    def __init__(
        self,
        kind: ExecutorKind,
        step_ids: Callable[[str], Collection[str]],
        setup: WorkflowSetup,
    ) -> None:
        self.kind = kind
        self.step_ids = step_ids  # a run's steps now, those foreach and loops added included
        self.setup = setup

    async def execute(self, call: StepCall) -> StepOutcome:
        # only the results the step reads go with it: a fan-out's instances would otherwise
        # each carry every earlier instance's output (n² in the history)
        steps = self.step_ids(call.run_id)
        payload = {"kind": self.kind.value, "call": call_to_json(call, steps)}
        try:
            handle = workflow.start_activity(
                STEP_ACTIVITY,
                to_wire(payload),
                result_type=str,
                # the runner's own timeout cancels it first; this is the backstop
                start_to_close_timeout=timedelta(seconds=call.timeout_s + 60),
                heartbeat_timeout=timedelta(seconds=self.setup.heartbeat_s),
                retry_policy=RetryPolicy(
                    maximum_attempts=self.setup.activity_attempts,
                    non_retryable_error_types=[STEP_ERROR],
                ),
                summary=f"{call.step.id} #{call.attempt}",
            )
            try:
                # Shielded: a cancelled activity's handle ends only once the server says
                # so, in a later activation; until then anyio's cancel scope would re-deliver
                # the cancellation in a busy loop and the workflow would never yield.
                wire = await asyncio.shield(handle)
            except asyncio.CancelledError:
                handle.cancel()  # asks the worker to stop the step; no wait for it
                raise
        except ActivityError as exc:
            raise _step_error(exc, call) from None
        return outcome_from_json(from_wire(wire))


def _step_error(exc: ActivityError, call: StepCall) -> StepError:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type == STEP_ERROR and cause.details:
        return error_from_json(cause.details[0])
    if isinstance(cause, TimeoutError):
        return StepError(
            f"no worker finished step {call.step.id!r} (attempt {call.attempt}): "
            f"{cause.type.name.lower() if cause.type else 'timeout'} after "
            "Temporal's retries; check that `tutti worker` processes are running",
            kind=StepErrorKind.TIMEOUT,
        )
    return StepError(f"step {call.step.id!r} failed on a worker: {cause or exc}")


def _now() -> float:
    """The run's clock inside the workflow: the time of the current workflow task, the
    same on every replay."""
    return workflow.now().timestamp()


@workflow.defn(name=RUN_WORKFLOW, sandboxed=False)
class TuttiRunWorkflow:
    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._store = InMemoryRunStore(clock=_now)
        self._run_id = ""
        self._final: dict[str, Any] | None = None
        self._rolling = False  # the run goes on in a new execution once this one drains
        self._rolls = 0  # executions of the run before this one

    @workflow.run
    async def run(self, wire: str) -> str:
        RENDER_INLINE.set(True)
        args: dict[str, Any] = from_wire(wire)  # JSON text: keeps the spec's key order
        setup = SETUP
        self._run_id = args["run_id"]
        self._rolls = int(args.get("rolls", 0))
        executors: dict[ExecutorKind, StepExecutor] = {
            ExecutorKind.CLIENT: ClientExecutor(),
            ExecutorKind.GATE: GateExecutor(),
        }
        for kind in WORKER_KINDS:
            executors[kind] = ActivityExecutor(kind, self._steps_of, setup)
        limits = dict(EngineConfig().executor_limits)
        limits.update(setup.executor_limits or {})
        config = EngineConfig(
            models=setup.models,
            model_executor=ExecutorKind(args.get("model_executor", "prompt")),
            max_concurrency=setup.max_concurrency,
            executor_limits=limits,
            workspace=Path(args["workspace"]),
            client_poll_s=86_400.0,  # answers come by update, not by polling a store
            clock=_now,
            rand=workflow.random().random,
        )
        engine = Engine(self._store, executors, config)
        try:
            prepared = await engine.create(
                args["spec"],
                args.get("inputs") or {},
                run_id=self._run_id,
                workspace=args["workspace"],
                parent_run_id=args.get("parent_run_id"),
            )
            if args.get("seed"):  # a resume or a fork: the steps it starts from
                await plant(self._store, self._run_id, args["seed"])
                prepared.run = await self._store.load_run(self._run_id)
        except TuttiError as exc:  # checked before submission; a changed worker may differ
            raise ApplicationError(str(exc), type="tutti.InvalidRun", non_retryable=True) from None
        self._engine = engine
        running = asyncio.ensure_future(engine.execute(prepared, attached=True))
        watcher = asyncio.ensure_future(self._roll_when_long(engine, running, setup))
        try:
            record = await asyncio.shield(running)
        except asyncio.CancelledError:  # the run was cancelled through Temporal
            self._rolling = False
            engine.cancel(self._run_id)
            record = await running
        finally:
            watcher.cancel()
        if self._rolling:
            # as a resume would: every committed step kept, the others run in the new one
            await workflow.wait_condition(workflow.all_handlers_finished)
            rolls = int(args.get("rolls", 0)) + 1
            workflow.continue_as_new(to_wire({**args, "seed": seed_of(record), "rolls": rolls}))
        # `rolls`: how many executions before this one the run went on from
        self._final = {**run_to_json(record), "rolls": int(args.get("rolls", 0))}
        return to_wire(self._final)

    # Records, events and answers cross as JSON text, as step payloads do: Temporal's JSON
    # converter would sort the keys of the outputs in them.
    async def _roll_when_long(
        self, engine: Engine, running: asyncio.Future[RunRecord], setup: WorkflowSetup
    ) -> None:
        """Once the history is long, start no more steps; when those in flight have
        committed (and only the caller's steps are left, if any), the run ends here and goes
        on in a new execution, before Temporal's history limit ends it."""
        await workflow.wait_condition(
            lambda: workflow.info().get_current_history_length() >= setup.roll_at_events
        )
        execution = engine.live.get(self._run_id)
        if execution is None or running.done():
            return
        self._rolling = True
        execution.core.stop(ROLL_REASON)
        await workflow.wait_condition(lambda: running.done() or execution.blocked_on_client)
        if not running.done():  # steps wait on the caller: handed over again in the new one
            engine.cancel(self._run_id)

    def _steps_of(self, run_id: str) -> Collection[str]:
        execution = self._engine.live.get(run_id) if self._engine is not None else None
        return () if execution is None else execution.run.steps.keys()

    @workflow.query(name="run")
    def run_record(self, run_id: str | None = None) -> str | None:
        """The run's record as it stands (a `workflow` step's child run by its id)."""
        wanted = run_id or self._run_id
        if self._final is not None and wanted == self._run_id:
            return to_wire(self._final)
        engine = self._engine
        if engine is not None and wanted in engine.live:
            execution = engine.live[wanted]
            live = run_to_json(execution.run)
            blocked = execution.blocked_on_client
            return to_wire({**live, "blocked_on_client": blocked, "rolls": self._rolls})
        record = self._store.peek(wanted)
        return None if record is None else to_wire(run_to_json(record))

    @workflow.query(name="events")
    def events(self, after: int = 0) -> str:
        return to_wire(
            [
                {
                    "seq": seq,
                    "at": at,
                    "kind": ev.kind.value,
                    "step_id": ev.step_id,
                    "data": ev.data,
                }
                for seq, at, ev in self._store.peek_events(self._run_id, after)
            ]
        )

    @workflow.update(name="complete_step")
    async def complete_step(self, wire: str) -> str:
        """A client step's output or failure, or an approval gate's answer."""
        args: dict[str, Any] = from_wire(wire)
        await workflow.wait_condition(lambda: self._engine is not None)
        assert self._engine is not None
        run_id = args.get("run_id") or self._run_id
        try:
            status = await self._engine.complete_step(
                run_id, args["step_id"], output=args.get("output"), error=args.get("error")
            )
        except TuttiError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__) from None
        return status.value
