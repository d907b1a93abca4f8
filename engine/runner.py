"""Executing one run: an event-driven loop on anyio around the deterministic `RunCore`.

A step starts the moment its last dependency commits, within the global concurrency
cap and per-executor caps; ready steps are taken in order of their estimated remaining
path (critical path first). Each attempt runs under a timeout; failures retry with
exponential backoff and jitter, then the step's failure policy applies.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from tutti_mcp.engine.core import FailureAction, RunCore
from tutti_mcp.engine.errors import ConfigurationError, StepError, StepErrorKind, TemplateError
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.outputs import shape_output, shaped
from tutti_mcp.engine.plan import Plan
from tutti_mcp.engine.report import Segments, earlier_segments, run_metrics
from tutti_mcp.engine.spec import ExecutorKind, Step
from tutti_mcp.engine.templating import evaluate_async
from tutti_mcp.engine.usage import EARLIER, add_usage, step_spent
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.history import DecisionEntry, HistoryWriteError, entry_from_run, ran_here
from tutti_mcp.memory.runs.owner import current_owner
from tutti_mcp.memory.runs.records import Checkpoint, Event, RunRecord, RunStatus, StepStatus

if TYPE_CHECKING:
    from tutti_mcp.engine.service import Engine

EventSink = Callable[[str, str | None, dict[str, Any]], None]
log = logging.getLogger("tutti.runner")


def _unknown(step: Step) -> float | None:
    return None


@dataclass
class _Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    errors: dict[str, list[str]] = field(default_factory=dict)


class RunExecution:
    """One process's execution of one run, from start (or resume) to a resting status."""

    def __init__(
        self,
        engine: Engine,
        run: RunRecord,
        wf: Workflow,
        plan: Plan,
        *,
        attached: bool,
        on_event: EventSink | None,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.run_id = run.id
        self.run = run
        self.wf = wf
        self.plan = plan
        self.attached = attached
        self.on_event = on_event
        cfg = engine.config
        self.kinds = {sid: engine.executor_kind(wf.steps[sid], wf.spec) for sid in wf.order}
        self.limits = {k: cfg.executor_limits.get(k, 1 << 30) for k in ExecutorKind}
        parallel = wf.spec.optimization.parallel_where_possible
        self.cap = min(wf.spec.max_concurrency, cfg.max_concurrency) if parallel else 1
        # Steps that finish well within their timeout by construction need no cancel scope.
        self.bounded: set[str] = set()
        # Steps that take a while: their "running" state is worth committing early, so
        # other processes see it (quick steps fold it into their completion's commit).
        self.lasting: set[str] = set()
        for sid in wf.order:
            bound = getattr(engine.executors.get(self.kinds[sid]), "max_duration", _unknown)(
                wf.steps[sid]
            )
            if bound is not None and bound < (wf.steps[sid].timeout or wf.spec.defaults.timeout):
                self.bounded.add(sid)
            if bound is None or bound > 0.005:
                self.lasting.add(sid)
        self._flush_pending = False
        self.core = RunCore(wf, {s: p.priority for s, p in plan.steps.items()})
        self.ctx: dict[str, Any] = {"inputs": run.inputs}
        self.running = 0
        self.by_kind = dict.fromkeys(ExecutorKind, 0)
        self.deferred: dict[ExecutorKind, deque[str]] = {k: deque() for k in ExecutorKind}
        self.n_deferred = 0  # steps ready but held back by their executor's cap
        self.waiting: set[str] = set()
        self.prior_attempts = {sid: rec.attempts for sid, rec in run.steps.items()}
        # usage of failed attempts made by an earlier execution, for steps that run again
        self.prior_spent: dict[str, dict[str, Any]] = {}
        self.totals = _Totals()
        self.cancel_requested = False
        self.workspace = Path(run.workspace) if run.workspace else cfg.workspace
        self._tg: TaskGroup | None = None
        self._wake = anyio.Event()
        self._resting = False
        self._committed = max((r.seq or 0 for r in run.steps.values()), default=0)
        self.decisions: dict[str, DecisionEntry] = {}  # conditions evaluated by this execution
        # what earlier executions of the run took (before this one overwrites `started_at`)
        self.earlier: Segments | None = earlier_segments(run)
        self._restored = 0  # steps taken from checkpoints

    # -- entry -----------------------------------------------------------------------------
    async def execute(self) -> RunStatus:
        committed, client_failed, reset = self.core.restore(self.run.steps)
        self._restored = len(committed)
        for sid in committed:
            rec = self.run.steps[sid]
            self._set_ctx(sid, rec.output, rec.status)
            for part in step_spent(rec.usage, None):
                self._add_usage(part)
        for primary, fb in self.core.output_from.items():
            self._set_ctx(primary, self.ctx[fb]["output"], StepStatus.FAILED)
        for sid in reset:
            self.store.append_event(
                Event(self.run_id, "step_reset", sid, {"was": self.run.steps[sid].status.value})
            )
        if reset:
            await self.store.reset_steps(self.run_id, reset)
        for sid in reset:
            rec = self.run.steps[sid]
            rec.status, rec.finished_at = StepStatus.PENDING, None
            spent = (rec.detail or {}).get("usage")
            if isinstance(spent, dict):  # spent by its failed attempts: still counts
                self.prior_spent[sid] = spent
                self._add_usage(spent)
        self.core.start()
        now = self._started = self.engine.config.clock()
        owner = current_owner()
        more: dict[str, Any] = {}
        if self.earlier is not None:  # kept now: this execution may be cut off too
            self.run.metrics = more["metrics"] = {
                **(self.run.metrics or {}),
                **self.earlier.fields(),
            }
        await self.store.set_run(
            self.run_id, status=RunStatus.RUNNING, owner=owner, started_at=now, error=None, **more
        )
        self.run.status, self.run.owner, self.run.started_at = RunStatus.RUNNING, owner, now
        self.run.error = self.run.finished_at = None
        self._emit("run_started", None, {"steps": len(self.wf.order), "committed": len(committed)})
        outer_cancel = False
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for sid in client_failed:
                    rec = self.run.steps[sid]
                    err = StepError(
                        rec.error or "the client reported a failure",
                        retryable=False,
                        kind=StepErrorKind.CLIENT,
                    )
                    await self._fail(sid, err, rec.attempts, rec.started_at)
                self._dispatch()
                if self.attached:
                    tg.start_soon(self._watch_waiting)
                self._check_rest()
        except anyio.get_cancelled_exc_class():
            outer_cancel = True
            raise
        finally:
            with anyio.CancelScope(shield=True):
                status = await self._finalize(outer_cancel)
        return status

    @property
    def blocked_on_client(self) -> bool:
        """Only client steps can move the run on: nothing runs and nothing else is ready."""
        return (
            self.running == 0
            and bool(self.waiting)
            and not self.core.has_ready
            and not self.n_deferred
        )

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # -- dispatching -----------------------------------------------------------------------
    def _dispatch(self) -> None:
        assert self._tg is not None
        while self.running < self.cap:
            nxt = self._next()
            if nxt is None:
                return
            sid, skip = nxt
            kind = self.kinds[sid]
            self.running += 1
            self.by_kind[kind] += 1
            self._tg.start_soon(self._worker, sid, kind, skip, name=sid)

    async def _worker(self, sid: str, kind: ExecutorKind, skip: str | None) -> None:
        """Run a step, then keep going with the next ready step in the same task while
        there is one: a chain then costs no task spawn per step."""
        while True:
            try:
                await self._run_step(sid, kind, skip)
            finally:
                self.running -= 1
                self.by_kind[kind] -= 1
            if self.running >= self.cap:
                break
            nxt = self._next()
            if nxt is None:
                break
            sid, skip = nxt
            kind = self.kinds[sid]
            self.running += 1
            self.by_kind[kind] += 1
            self._dispatch()  # more ready steps than this task can take: spawn for them
        self._dispatch()
        self._check_rest()

    def _next(self) -> tuple[str, str | None] | None:
        if self.core.stop_reason is not None:
            return None
        if self.n_deferred:
            for kind, q in self.deferred.items():
                if q and self.by_kind[kind] < self.limits[kind]:
                    self.n_deferred -= 1
                    return q.popleft(), None
        while self.core.has_ready:
            d = self.core.pop_ready()
            assert d is not None
            kind = self.kinds[d.step_id]
            if d.skip_reason is None and self.by_kind[kind] >= self.limits[kind]:
                self.deferred[kind].append(d.step_id)
                self.n_deferred += 1
                continue
            return d.step_id, d.skip_reason
        return None

    def _check_rest(self) -> None:
        """Wake the watcher when nothing more can happen without outside input."""
        if self.running == 0 and (self.core.stop_reason is not None or not self.core.has_ready):
            if self.core.done or self.core.stop_reason is not None or not self.waiting:
                self._resting = True
            self._wake.set()

    # -- one step --------------------------------------------------------------------------
    async def _run_step(self, sid: str, kind: ExecutorKind, skip: str | None) -> None:
        step = self.wf.steps[sid]
        try:
            if skip is None and step.when is not None:
                skip = await self._condition(sid, step.when)
            if skip is not None:
                await self._skip(sid, skip)
            else:
                await self._attempts(sid, step, kind)
        except anyio.get_cancelled_exc_class():
            status = StepStatus.CANCELLED if self.cancel_requested else StepStatus.INTERRUPTED
            with anyio.CancelScope(shield=True):
                await self._set_step(sid, status)
            self.core.cancelled(sid)
            raise

    async def _condition(self, sid: str, when: str) -> str | None:
        try:
            result = bool(await evaluate_async(when, self.ctx))
        except TemplateError as exc:
            self.decisions[sid] = DecisionEntry(sid, when, None)
            return f"condition could not be evaluated: {exc}"
        self.decisions[sid] = DecisionEntry(sid, when, result)
        self.store.append_event(
            Event(self.run_id, "condition", sid, {"when": when, "result": result})
        )
        self._emit("condition", sid, {"when": when, "result": result})
        return None if result else f"condition is false: {when}"

    async def _attempts(self, sid: str, step: Step, kind: ExecutorKind) -> None:
        spec = self.wf.spec
        policy = step.retry or spec.defaults.retry
        timeout = step.timeout or spec.defaults.timeout
        executor = self.engine.executors[kind]
        clock = self.engine.config.clock
        sp = self.plan.steps[sid]
        model = (
            self.engine.config.models.resolve(step.model or spec.defaults.model)
            if sp.thinking
            else None
        )
        attempt = self.prior_attempts.get(sid, 0)
        first_start: float | None = None
        spent = self.prior_spent.pop(sid, None)  # what failed attempts consumed
        for n in range(1, policy.attempts + 1):
            attempt += 1
            started = clock()
            first_start = first_start or started
            self.store.note_step_started(self.run_id, sid, attempt, started)
            if sid in self.lasting and not self._flush_pending and self._tg is not None:
                self._flush_pending = True
                self._tg.start_soon(self._flush_started, name="flush started steps")
            rec = self.run.steps[sid]
            rec.status, rec.attempts, rec.started_at = StepStatus.RUNNING, attempt, started
            if self.on_event is not None:
                self._emit("step_started", sid, {"attempt": attempt})
            call = StepCall(
                run_id=self.run_id,
                step=step,
                attempt=attempt,
                context=self.ctx,
                deps=self.wf.deps[sid],
                timeout_s=timeout,
                workspace=self.workspace,
                thinking=sp.thinking,
                model=model,
                workflow=spec.name,
            )
            try:
                if sid in self.bounded:  # ends before its timeout could fire
                    outcome = await executor.execute(call)
                else:
                    with anyio.fail_after(timeout):
                        outcome = await executor.execute(call)
                if outcome.handoff is None:
                    output = shaped(step, outcome)
            except TimeoutError:
                err = StepError(
                    f"timed out after {timeout:g}s (attempt {attempt})", kind=StepErrorKind.TIMEOUT
                )
            except StepError as exc:
                err = exc
            except (TemplateError, ConfigurationError) as exc:
                err = StepError(str(exc), retryable=False, kind=StepErrorKind.of_refusal(exc))
            except (
                Exception
            ) as exc:  # the step boundary: an executor's error fails the step, not the run
                err = StepError(f"{type(exc).__name__}: {exc}", kind=StepErrorKind.EXCEPTION)
            else:
                if outcome.handoff is not None:
                    await self._handoff(sid, attempt, started, outcome.handoff)
                else:
                    await self._commit(
                        sid,
                        output,
                        outcome,
                        attempt,
                        first_start,
                        StepStatus.SUCCEEDED,
                        outcome.warning,
                        earlier=spent,
                    )
                return
            if err.usage:
                spent = add_usage(spent, err.usage)
                self._add_usage(err.usage)
                self._check_budget()
            self.totals.errors.setdefault(sid, []).append(str(err))
            if not err.retryable or n == policy.attempts or self.core.stop_reason is not None:
                await self._fail(sid, err, attempt, first_start, spent)
                return
            delay = policy.delay(n, self.engine.config.rand())
            self._emit(
                "step_retrying", sid, {"attempt": attempt, "error": str(err), "delay_s": delay}
            )
            await anyio.sleep(delay)

    async def _commit(
        self,
        sid: str,
        output: Any,
        outcome: StepOutcome,
        attempt: int,
        started: float | None,
        status: StepStatus,
        error: str | None = None,
        *,
        earlier: dict[str, Any] | None = None,
    ) -> None:
        usage = outcome.usage
        if outcome.cost_usd is not None:
            usage = {**(usage or {}), "cost_usd": outcome.cost_usd}
        if earlier:  # counted in the totals when those attempts failed
            usage = {**(usage or {}), EARLIER: earlier}
        self._committed += 1
        cp = Checkpoint(
            step_id=sid,
            seq=self._committed,
            status=status,
            output=output,
            attempts=attempt,
            started_at=started,
            finished_at=self.engine.config.clock(),
            usage=usage,
            executor=self.kinds[sid].value,
            error=error,
        )
        await self.store.commit_checkpoint(self.run_id, cp)
        rec = self.run.steps[sid]
        rec.status, rec.output, rec.usage, rec.seq = status, output, usage, cp.seq
        rec.detail = None
        rec.attempts, rec.started_at, rec.finished_at = attempt, started, cp.finished_at
        rec.executor, rec.error = cp.executor, error
        self.waiting.discard(sid)
        self._add_usage(usage)
        self._set_ctx(sid, output, status)
        if status is StepStatus.DEGRADED:
            self.core.degraded(sid)
        else:
            primary = self.wf.fallback_of.get(sid)
            for fb in self.core.succeeded(sid, status):
                await self._set_step(
                    fb, StepStatus.SKIPPED, detail={"reason": "fallback not needed"}
                )
                self.core.status[fb] = StepStatus.SKIPPED
            if primary is not None:
                self._set_ctx(primary, output, StepStatus.FAILED)
        self._check_budget()
        if self.on_event is not None:
            self._emit(f"step_{status.value}", sid, {"attempts": attempt})

    async def _fail(
        self,
        sid: str,
        err: StepError,
        attempt: int,
        started: float | None,
        spent: dict[str, Any] | None = None,
    ) -> None:
        action = self.core.failed(sid)
        if action is FailureAction.USE_DEFAULT:
            step = self.wf.steps[sid]
            await self._commit(
                sid,
                step.default,
                StepOutcome(),
                attempt,
                started,
                StepStatus.DEGRADED,
                str(err),
                earlier=spent,
            )
            return
        detail: dict[str, Any] = {
            "error_kind": err.kind.value,  # a plain string, as the store gives it back
            "retryable": err.retryable,
            "attempts": attempt,
            "errors": self.totals.errors.get(sid, [str(err)])[-5:],
            "policy": self.wf.steps[sid].on_failure.value,
            "action": action.value,
        }
        if spent:
            detail["usage"] = spent
        await self._set_step(
            sid,
            StepStatus.FAILED,
            attempts=attempt,
            error=str(err),
            finished_at=self.engine.config.clock(),
            detail=detail,
        )
        self.waiting.discard(sid)
        self.ctx[sid] = {"output": None, "results": None, "status": "failed", "error": str(err)}
        self._emit("step_failed", sid, {"error": str(err), "action": action.value})

    async def _skip(self, sid: str, reason: str) -> None:
        if sid in self.wf.fallback_of:  # a fallback that cannot run leaves its primary failed
            await self._fail(
                sid, StepError(f"fallback skipped: {reason}", retryable=False), 0, None
            )
            return
        await self._set_step(sid, StepStatus.SKIPPED, detail={"reason": reason})
        self.core.skipped(sid)
        self.ctx[sid] = {"output": None, "results": None, "status": "skipped", "error": None}
        self._emit("step_skipped", sid, {"reason": reason})

    async def _handoff(
        self, sid: str, attempt: int, started: float, request: dict[str, Any]
    ) -> None:
        await self._set_step(
            sid,
            StepStatus.WAITING,
            attempts=attempt,
            started_at=started,
            detail=request,
        )
        self.core.waiting(sid)
        self.waiting.add(sid)
        self._emit("step_waiting", sid, {"request": request})

    # -- client steps ----------------------------------------------------------------------
    async def deliver(self, sid: str, output: Any, error: str | None) -> None:
        """The client finished a waiting step (called in this process)."""
        if sid not in self.wf.steps:
            known = ", ".join(self.wf.order)
            raise StepError(
                f"run {self.run_id} has no step {sid!r} (its steps: {known})", retryable=False
            )
        if sid not in self.waiting:
            raise StepError(f"step {sid!r} is not waiting for the client", retryable=False)
        step = self.wf.steps[sid]
        if error is None:
            try:
                output = shape_output(step, output)
            except StepError as exc:
                raise StepError(f"step {sid!r}: {exc}", retryable=False) from None
        self.waiting.discard(sid)
        # While its result is committed the step counts as running, so the run is not
        # taken for resting (and its task group closed) in the meantime.
        self.running += 1
        try:
            # the attempt and start time are those of the handoff: the client's time counts
            rec = self.run.steps[sid]
            attempt, rec_start = rec.attempts, rec.started_at
            if error is None:
                await self._commit(
                    sid, output, StepOutcome(), attempt, rec_start, StepStatus.SUCCEEDED
                )
            else:
                err = StepError(f"the client reported: {error}", kind=StepErrorKind.CLIENT)
                await self._fail(sid, err, attempt, rec_start)
        finally:
            self.running -= 1
        self._dispatch()
        self._check_rest()

    async def _watch_waiting(self) -> None:
        """Attached runs wait here for client steps. Completions in this process arrive
        through `deliver`; those from another process are seen by polling the store, every
        `client_poll_s` while steps wait."""
        while not self._resting:
            with anyio.move_on_after(self.engine.config.client_poll_s) as scope:
                await self._wake.wait()
            self._wake = anyio.Event()
            if scope.cancelled_caught and self.waiting and not self._resting:
                await self._poll_store()

    async def _poll_store(self) -> None:
        self.running += 1  # as in `deliver`: not resting while this settles steps
        try:
            await self._settle_from_store()
        finally:
            self.running -= 1
        self._dispatch()
        self._check_rest()

    async def _settle_from_store(self) -> None:
        run = await self.store.load_run(self.run_id)
        for sid in list(self.waiting):
            if sid not in self.waiting:  # delivered in this process meanwhile
                continue
            rec = run.steps[sid]
            if rec.status.has_output and rec.seq is not None:
                self.run.steps[sid] = rec
                self.waiting.discard(sid)
                self._add_usage(rec.usage)
                self._set_ctx(sid, rec.output, rec.status)
                self.core.succeeded(sid, rec.status)
                self._emit("step_succeeded", sid, {"by": "another process"})
            elif rec.status is StepStatus.FAILED:
                err = StepError(
                    rec.error or "the client reported a failure",
                    retryable=False,
                    kind=StepErrorKind.CLIENT,
                )
                await self._fail(sid, err, rec.attempts, rec.started_at)

    # -- bookkeeping -----------------------------------------------------------------------
    async def _flush_started(self) -> None:
        """Commit queued "step started" records once the steps starting now have started."""
        await anyio.sleep(0)
        self._flush_pending = False
        await self.store.flush()

    async def _set_step(self, sid: str, status: StepStatus, **fields: Any) -> None:
        """Record a step's new status durably, and in the run record this execution keeps
        (so the final record needs no reload)."""
        await self.store.set_step(self.run_id, sid, status, **fields)
        rec = self.run.steps[sid]
        rec.status = status
        for k, v in fields.items():
            setattr(rec, k, v)

    def _set_ctx(self, sid: str, output: Any, status: StepStatus) -> None:
        self.ctx[sid] = {"output": output, "results": output, "status": status.value, "error": None}

    def _add_usage(self, usage: Mapping[str, Any] | None) -> None:
        if usage:
            self.totals.input_tokens += int(usage.get("input_tokens", 0))
            self.totals.output_tokens += int(usage.get("output_tokens", 0))
            self.totals.cost_usd += float(usage.get("cost_usd") or 0.0)

    def _check_budget(self) -> None:
        budget = self.wf.spec.budget
        t = self.totals
        if budget.max_cost_usd is not None and t.cost_usd > budget.max_cost_usd:
            self.core.stop_reason = (
                f"cost budget exceeded: ${t.cost_usd:.4f} > ${budget.max_cost_usd}"
            )
        tokens = t.input_tokens + t.output_tokens
        if budget.max_tokens is not None and tokens > budget.max_tokens:
            self.core.stop_reason = f"token budget exceeded: {tokens} > {budget.max_tokens}"

    def _emit(self, kind: str, sid: str | None, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, sid, data)

    async def _finalize(self, outer_cancel: bool) -> RunStatus:
        error: str | None = None
        if self.cancel_requested:
            status = RunStatus.CANCELLED
            error = "cancelled on request"
            for sid in sorted(self.waiting):  # handed to the client: withdrawn
                await self._set_step(sid, StepStatus.CANCELLED)
            self.waiting.clear()
        elif outer_cancel:
            status = RunStatus.INTERRUPTED
            error = "the process running it stopped; resume to continue"
        elif self.core.done:
            status = RunStatus.SUCCEEDED
            for fb in self.core.not_needed_fallbacks():
                await self._set_step(
                    fb, StepStatus.SKIPPED, detail={"reason": "fallback not needed"}
                )
        elif self.core.stop_reason is not None:
            status = RunStatus.FAILED
            error = self.core.stop_reason
        elif self.waiting:
            status = RunStatus.WAITING
        else:
            status = RunStatus.FAILED
            error = "no step can run: check conditions and dependencies"
        now = self.engine.config.clock()
        finished = now if status.finished else None
        run = self.run
        run.status, run.error, run.finished_at, run.owner = status, error, finished, None
        segments = (
            Segments.first(self._started, now)
            if self.earlier is None
            else self.earlier.then(self._started, now)
        )
        run.metrics = run_metrics(run, self.wf, segments)
        if status.finished:  # first: whoever sees the run finished sees it in the history
            await self._record_history()
        await self.store.set_run(
            self.run_id,
            status=status,
            error=error,
            finished_at=finished,
            owner=None,
            metrics=run.metrics,
        )
        await self.store.flush()
        self._emit(f"run_{status.value}", None, {"error": error})
        return status

    async def _record_history(self) -> None:
        """Add the finished run to its workflow's history, which later plans read. Not
        being able to is logged: it changes nothing about how the run ended."""
        decisions = dict(self.decisions)
        for sid in self.wf.order:  # committed by an earlier execution: its condition held
            when, rec = self.wf.steps[sid].when, self.run.steps[sid]
            if when is None or sid in decisions or not rec.status.has_output:
                continue
            if rec.seq is not None and ran_here(self.run, rec):
                decisions[sid] = DecisionEntry(sid, when, True)
        entry = entry_from_run(
            self.run,
            executors={sid: kind.value for sid, kind in self.kinds.items()},
            decisions=[decisions[sid] for sid in self.wf.order if sid in decisions],
            restored=self._restored,
        )
        try:
            await self.store.record_history(entry)
        except HistoryWriteError:
            log.warning(
                "run %s finished; its workflow history was not recorded", self.run_id, exc_info=True
            )
