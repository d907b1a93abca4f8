"""Executing one run: an event-driven loop on anyio around the deterministic `RunCore`.

A step starts the moment its last dependency commits, within the run's concurrency cap and
per-executor caps (dispatch); ready steps are taken in order of their estimated remaining
path (critical path first). The runner only conducts: attempts run steps, the ledger
records, client steps wait for the caller, finish decides how the run ends.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from tutti_mcp.engine.core import FailureAction, RunCore
from tutti_mcp.engine.errors import StepError, StepErrorKind
from tutti_mcp.engine.execution.attempts import Attempts, Failed, HandedOff, StepSetup, step_setup
from tutti_mcp.engine.execution.children import ChildSteps
from tutti_mcp.engine.execution.client_steps import ClientSteps, client_failure
from tutti_mcp.engine.execution.conditions import decide
from tutti_mcp.engine.execution.context import EventSink, PreparedRun, RunContext
from tutti_mcp.engine.execution.dispatch import Dispatch, DispatchStats
from tutti_mcp.engine.execution.finish import history_entry, resting_status, segments_of
from tutti_mcp.engine.execution.gate_steps import GateSteps
from tutti_mcp.engine.execution.growth import Growth
from tutti_mcp.engine.execution.ledger import RunLedger
from tutti_mcp.engine.gates import GateRejected
from tutti_mcp.engine.modes.pipeline.steps import PipelineSteps
from tutti_mcp.engine.report import Segments, earlier_segments, run_metrics
from tutti_mcp.engine.spec import Step
from tutti_mcp.memory.runs.owner import current_owner
from tutti_mcp.memory.runs.records import (
    EventKind,
    FailureDetail,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)

QUICK_WORKERS = 16  # tasks that share a fan-out's quick steps (each slow step has its own)


class RunExecution:
    """One process's execution of one run, from start (or resume) to a resting status."""

    def __init__(
        self,
        ctx: RunContext,
        prepared: PreparedRun,
        *,
        attached: bool,
        on_event: EventSink | None,
    ) -> None:
        run, wf = prepared.run, prepared.workflow
        if wf.groups:  # the run adds steps as it goes: to its own copy
            wf = wf.live()
        self.ctx = ctx
        self.run_id = run.id
        self.wf = wf
        self.attached = attached
        cfg = ctx.config
        parallel = wf.spec.optimization.parallel_where_possible
        cap = min(wf.spec.max_concurrency, cfg.max_concurrency) if parallel else 1
        self.core = RunCore(wf, {s: p.priority for s, p in prepared.plan.steps.items()})
        self.dispatch = Dispatch(self.core, wf.executors, cap, cfg.executor_limits)
        self.ledger = RunLedger(ctx.store, run, cfg.clock, on_event)
        self.growth = Growth(wf, self.core, self.ledger) if wf.groups else None
        for group in wf.groups:
            fe = wf.steps[group].foreach
            if fe is not None and fe.max_concurrency is not None and self.growth is not None:
                self.dispatch.cap_group(group, fe.max_concurrency, self.growth.parent)
        workspace = Path(run.workspace) if run.workspace else cfg.workspace
        self.attempts = Attempts(ctx, self.ledger, self.core, wf.spec, workspace)
        self.workspace = workspace
        self.client = ClientSteps(ctx.store, run, wf, cfg.client_poll_s, cfg.clock)
        self.children = ChildSteps(
            ctx.children, self.ledger, cfg.clock, workspace, wf.spec.defaults.model_executor
        )
        self.gates = GateSteps(ctx, self.ledger, self.core, self.client, wf.spec, workspace)
        self.pipelines = PipelineSteps(ctx, self.ledger, wf.spec, workspace)
        self.prepared = prepared
        self._setups: dict[tuple[str | None, str], StepSetup] = {}
        self._workers = 0  # tasks running steps
        self._backlog: deque[tuple[str, str | None]] = deque()  # quick steps taken, not started
        self.prior_attempts = {sid: rec.attempts for sid, rec in run.steps.items()}
        # usage of failed attempts made by an earlier execution, for steps that run again
        self.prior_spent: dict[str, dict[str, Any]] = {}
        self.cancel_requested = False
        self._tg: TaskGroup | None = None
        # what earlier executions of the run took (before this one overwrites `started_at`)
        self.earlier: Segments | None = earlier_segments(run)
        self._restored = 0  # steps taken from checkpoints
        self._started = 0.0

    @property
    def run(self) -> RunRecord:
        """The run as this execution sees it now (the ledger's mirror)."""
        return self.ledger.run

    def statistics(self) -> DispatchStats:
        return self.dispatch.statistics()

    # -- entry -------------------------------------------------------------------------------
    async def execute(self) -> RunStatus:
        run = self.run
        if self.growth is not None:
            self.growth.restore(run.steps)
        committed, client_failed, reset = self.core.restore(run.steps)
        self._restored = len(committed)
        self.prior_spent = await self.ledger.restore(committed, reset)
        for primary, fb in self.core.output_from.items():
            self.ledger.set_ctx(primary, self.ledger.ctx[fb]["output"], StepStatus.FAILED)
        self.core.start()
        now = self._started = self.ctx.config.clock()
        metrics = None
        if self.earlier is not None:  # kept now: this execution may be cut off too
            metrics = {**(run.metrics or {}), **self.earlier.fields()}
        await self.ledger.begin(current_owner(), now, metrics)
        self.ledger.emit(
            EventKind.RUN_STARTED, None, {"steps": len(self.wf.order), "committed": len(committed)}
        )
        outer_cancel = False
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.ledger.spawn = lambda fn: tg.start_soon(fn, name="flush started steps")
                for sid in client_failed:
                    rec = run.steps[sid]
                    await self._fail(sid, client_failure(rec), rec.attempts, rec.started_at)
                self._dispatch()
                if self.attached:
                    tg.start_soon(self.client.watch, self._settle)
                self._check_rest()
        except anyio.get_cancelled_exc_class():
            outer_cancel = True
            raise
        finally:
            with anyio.CancelScope(shield=True):
                status = await self._finish(outer_cancel)
        return status

    @property
    def blocked_on_client(self) -> bool:
        """Only client steps can move the run on: nothing runs and nothing else is ready."""
        return self.dispatch.idle and bool(self.client.waiting) and not self.core.has_ready

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # -- conducting --------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Start what can start. A step that may take a while gets a task of its own; quick
        steps (a builtin transform, a skip) beyond QUICK_WORKERS tasks wait in the backlog
        for a worker to be free: a wide fan-out of quick steps costs a few task spawns, not
        one per step, and still commits many steps at once."""
        assert self._tg is not None
        while (nxt := self.dispatch.take()) is not None:
            if self._workers >= QUICK_WORKERS and self._quick(*nxt):
                self._backlog.append(nxt)
            else:
                self._workers += 1
                self._tg.start_soon(self._worker, *nxt, name=nxt[0])

    def _quick(self, sid: str, skip: str | None) -> bool:
        return skip is not None or sid in self.wf.groups or not self._setup(sid).lasting

    async def _worker(self, sid: str, skip: str | None) -> None:
        """Run a step, then keep going with the backlog or the next ready step in the same
        task while there is one: a chain then costs no task spawn per step."""
        try:
            while True:
                try:
                    await self._run_step(sid, skip)
                finally:
                    self.dispatch.finished(sid)
                nxt = self._backlog.popleft() if self._backlog else self.dispatch.take()
                if nxt is None:
                    break
                sid, skip = nxt
                if self.core.has_ready or self.dispatch.n_queued:
                    self._dispatch()  # more ready steps than this task can take: start them
        finally:
            self._workers -= 1
        self._dispatch()
        self._check_rest()

    def _setup(self, sid: str) -> StepSetup:
        # steps added at run time share their step's setup
        loop, key = (None, sid) if self.growth is None else self.growth.origin(sid)
        setup = self._setups.get((loop, key))
        if setup is None:
            if loop is None or self.growth is None:
                wf, plan = self.prepared.workflow, self.prepared.plan
            else:
                wf, plan = self.growth.body_plan(loop, self.ctx.config.models)
            setup = self._setups[loop, key] = step_setup(self.ctx, wf, plan, key)
        return setup

    def _check_rest(self) -> None:
        """Wake the watcher when nothing more can happen without outside input."""
        core = self.core
        if self.dispatch.running == 0 and (core.stop_reason is not None or not core.has_ready):
            resting = core.done or core.stop_reason is not None or not self.client.waiting
            self.client.wake(resting=resting)

    async def _run_step(self, sid: str, skip: str | None) -> None:
        step = self.wf.steps[sid]
        try:
            if sid in self.core.expanded:
                await self._grow(sid, collect=True)
                return
            if step.when is not None and (skip is None or sid in self.wf.conditions):
                context = self.ledger.ctx if self.growth is None else self.growth.context(sid)
                skip = await decide(self.wf, self.ledger, sid, step.when, skip, context)
            if skip is not None:
                await self._skip(sid, skip)
            elif sid in self.wf.groups:
                await self._grow(sid, collect=False)
            else:
                await self._attempt(sid, step)
        except anyio.get_cancelled_exc_class():
            status = StepStatus.CANCELLED if self.cancel_requested else StepStatus.INTERRUPTED
            with anyio.CancelScope(shield=True):
                await self.ledger.set_step(sid, status)
            self.core.cancelled(sid)
            raise

    async def _attempt(self, sid: str, step: Step) -> None:
        attempts: Attempts | GateSteps | ChildSteps | PipelineSteps = self.attempts
        if step.approve is not None or step.workflow is not None:  # asked, or a child run
            attempts = self.gates if step.approve is not None else self.children
        elif step.pipeline is not None:  # items streamed through stages
            attempts = self.pipelines
        result = await attempts.run(
            step,
            self._setup(sid),
            self.wf.deps[sid],
            prior_attempts=self.prior_attempts.get(sid, 0),
            spent=self.prior_spent.pop(sid, None),
            context=None if self.growth is None else self.growth.context(sid),
        )
        if isinstance(result, HandedOff):
            await self.client.hand_off(sid, result, self.ledger)
            self.core.waiting(sid)
        elif isinstance(result, Failed):
            await self._fail(sid, result.error, result.attempt, result.started, result.spent)
        else:
            outcome = result.outcome
            usage = outcome.usage
            if outcome.cost_usd is not None:
                usage = {**(usage or {}), "cost_usd": outcome.cost_usd}
            await self._commit(
                sid,
                result.output,
                usage,
                result.attempt,
                result.started,
                StepStatus.SUCCEEDED,
                outcome.warning,
                earlier=result.spent,
            )

    async def _commit(
        self,
        sid: str,
        output: Any,
        usage: dict[str, Any] | None,
        attempt: int,
        started: float | None,
        status: StepStatus,
        error: str | None = None,
        *,
        earlier: dict[str, Any] | None = None,
    ) -> None:
        ledger = self.ledger
        await ledger.commit(
            sid,
            output,
            usage,
            attempt,
            started,
            status,
            executor=self.wf.executors[sid].value,
            error=error,
            earlier=earlier,
        )
        self.client.waiting.discard(sid)
        if status is StepStatus.DEGRADED:
            self.core.degraded(sid)
        else:
            primary = self.wf.fallback_of.get(sid)
            for fb in self.core.succeeded(sid, status):
                await ledger.set_step(
                    fb, StepStatus.SKIPPED, detail={"reason": "fallback not needed"}
                )
            if primary is not None:
                ledger.set_ctx(primary, output, StepStatus.FAILED)
        self.attempts.check_budget()
        if ledger.on_event is not None:
            ledger.emit(EventKind.of_step(status), sid, {"attempts": attempt})

    async def _fail(
        self,
        sid: str,
        err: StepError,
        attempt: int,
        started: float | None,
        spent: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(err, GateRejected):
            return await self.gates.reject(sid, err, attempt)
        action = self.core.failed(sid)
        step = self.wf.steps[sid]
        if action is FailureAction.USE_DEFAULT:
            await self._commit(
                sid,
                step.default,
                None,
                attempt,
                started,
                StepStatus.DEGRADED,
                str(err),
                earlier=spent,
            )
            return
        detail: FailureDetail = {
            "error_kind": err.kind.value,
            "retryable": err.retryable,
            "attempts": attempt,
            "errors": self.ledger.totals.errors.get(sid, [str(err)])[-5:],
            "policy": step.on_failure.value,
            "action": action.value,
        }
        if spent:
            detail["usage"] = spent
        await self.ledger.fail(sid, err, attempt, detail)
        self.client.waiting.discard(sid)
        self.ledger.emit(EventKind.STEP_FAILED, sid, {"error": str(err), "action": action.value})

    async def _skip(self, sid: str, reason: str) -> None:
        if sid in self.wf.fallback_of:  # a fallback that cannot run leaves its primary failed
            err = StepError(f"fallback skipped: {reason}", retryable=False)
            await self._fail(sid, err, 0, None)
            return
        await self.ledger.skip(sid, reason)
        self.core.skipped(sid)
        self.ledger.emit(EventKind.STEP_SKIPPED, sid, {"reason": reason})

    # -- steps added at run time -------------------------------------------------------------
    async def _grow(self, sid: str, *, collect: bool) -> None:
        """A `foreach` or `loop` step's turn: add its steps to the run (committed first), or,
        once they have settled, collect what they made (a loop may add its next iteration)."""
        growth = self.growth
        assert growth is not None
        started = self.ctx.config.clock()
        try:
            if collect:
                done = await growth.collect(sid)
            else:
                done = await growth.expand(sid, self.workspace, self.ctx.config.max_foreach_items)
        except StepError as exc:
            self.ledger.totals.errors.setdefault(sid, []).append(str(exc))
            await self._fail(sid, exc, 1, started)
            return
        if done is None:
            self.ledger.emit(EventKind.STEP_EXPANDED, sid, {"steps": len(growth.children[sid])})
        else:
            when = done.started or started
            await self._commit(sid, done.output, None, 1, when, done.status, done.error)

    # -- client steps ------------------------------------------------------------------------
    async def deliver(self, sid: str, output: Any, error: str | None) -> None:
        """The client finished a waiting step (reported in this process)."""
        value = self.client.check(sid, output, error)
        self.client.waiting.discard(sid)
        # the attempt and start time are those of the handoff: the client's time counts
        rec = self.run.steps[sid]
        with self.dispatch.held():
            if self.wf.steps[sid].pipeline is not None:  # a batch answered: its items go on
                await self.pipelines.answer(self.wf.steps[sid], value, self.core)
            elif isinstance(value, GateRejected):
                await self._fail(sid, value, rec.attempts, rec.started_at)
            elif error is None:
                await self._commit(
                    sid, value, None, rec.attempts, rec.started_at, StepStatus.SUCCEEDED
                )
            else:
                err = StepError(f"the client reported: {error}", kind=StepErrorKind.CLIENT)
                await self._fail(sid, err, rec.attempts, rec.started_at)
        self._dispatch()
        self._check_rest()

    async def _settle(self, records: list[StepRecord]) -> None:
        """Steps another process settled (read from the store while they waited here)."""
        with self.dispatch.held():
            for rec in records:
                sid = rec.step_id
                if sid not in self.client.waiting:  # delivered in this process meanwhile
                    continue
                settled = ClientSteps.settled_elsewhere(rec)
                if settled is True:
                    self.run.steps[sid] = rec
                    self.client.waiting.discard(sid)
                    self.ledger.adopt(sid, rec.output, rec.status, rec.usage)
                    self.core.succeeded(sid, rec.status)
                    self.ledger.emit(EventKind.STEP_SUCCEEDED, sid, {"by": "another process"})
                elif settled is False:
                    await self._fail(sid, client_failure(rec), rec.attempts, rec.started_at)
                elif self.client.answered_elsewhere(rec):
                    self.core.again(sid)
        self._dispatch()
        self._check_rest()

    # -- the end -----------------------------------------------------------------------------
    async def _finish(self, outer_cancel: bool) -> RunStatus:
        waiting = self.client.waiting
        status, error = resting_status(
            self.core,
            cancel_requested=self.cancel_requested,
            outer_cancel=outer_cancel,
            waiting=bool(waiting),
        )
        if status is RunStatus.CANCELLED:
            for sid in sorted(waiting):  # handed to the client: withdrawn
                await self.ledger.set_step(sid, StepStatus.CANCELLED)
            waiting.clear()
        elif status is RunStatus.SUCCEEDED:
            for fb in self.core.not_needed_fallbacks():
                await self.ledger.set_step(
                    fb, StepStatus.SKIPPED, detail={"reason": "fallback not needed"}
                )
        now = self.ctx.config.clock()
        finished = now if status.finished else None
        run = self.run
        run.status, run.error, run.finished_at, run.owner = status, error, finished, None
        run.metrics = run_metrics(run, self.wf, segments_of(self.earlier, self._started, now))
        history = (
            history_entry(run, self.prepared.workflow, self.ledger.decisions, self._restored)
            if status.finished
            else None
        )
        await self.ledger.end(status, error, finished, run.metrics, history)
        self.ledger.emit(EventKind.of_run(status), None, {"error": error})
        return status
