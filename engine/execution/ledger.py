"""The run's ledger: the in-memory mirror of the run (its record, the template context,
what it has spent) and the only writer to the store during an execution. Every change of
a step or the run goes through here, so the mirror and the store cannot drift apart."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.execution.context import EventSink
from tutti_mcp.engine.spec import Budget
from tutti_mcp.engine.usage import EARLIER, step_spent
from tutti_mcp.memory.runs.history import DecisionEntry, HistoryEntry, HistoryWriteError
from tutti_mcp.memory.runs.records import (
    Checkpoint,
    ClientRequest,
    Event,
    EventKind,
    FailureDetail,
    RunRecord,
    RunStatus,
    StepDetail,
    StepRecord,
    StepStatus,
)
from tutti_mcp.memory.runs.store import RunStore

log = logging.getLogger("tutti.runner")
_STATUS_TEXT = {s: s.value for s in StepStatus}  # a dict lookup: cheaper than `.value`


@dataclass
class Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    errors: dict[str, list[str]] = field(default_factory=dict)  # step -> attempts' errors


def over_budget(budget: Budget, t: Totals) -> str | None:
    """Why the run must stop starting steps, if its spending passed a budget."""
    if budget.max_cost_usd is not None and t.cost_usd > budget.max_cost_usd:
        return f"cost budget exceeded: ${t.cost_usd:.4f} > ${budget.max_cost_usd}"
    tokens = t.input_tokens + t.output_tokens
    if budget.max_tokens is not None and tokens > budget.max_tokens:
        return f"token budget exceeded: {tokens} > {budget.max_tokens}"
    return None


class RunLedger:
    def __init__(
        self,
        store: RunStore,
        run: RunRecord,
        clock: Callable[[], float],
        on_event: EventSink | None,
    ) -> None:
        self.store = store
        self.run = run
        self.run_id = run.id
        self.clock = clock
        self.on_event = on_event
        self.ctx: dict[str, Any] = {"inputs": run.inputs}
        self.totals = Totals()
        self.decisions: dict[str, DecisionEntry] = {}  # conditions evaluated by this execution
        self._seq = max((r.seq or 0 for r in run.steps.values()), default=0)
        # Queued "step started" records are committed by one task soon after they queue
        # (a quick step folds its own into its completion's commit instead).
        self.spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], object] | None = None
        self._flush_pending = False

    # -- telling -----------------------------------------------------------------------------
    def emit(self, kind: EventKind, sid: str | None, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, sid, data)

    def condition(self, sid: str, when: str, result: bool | None) -> None:
        """A step's condition was evaluated (None: it could not be)."""
        self.decisions[sid] = DecisionEntry(sid, when, result)
        if result is not None:
            data = {"when": when, "result": result}
            self.store.append_event(Event(self.run_id, EventKind.CONDITION, sid, data))
            self.emit(EventKind.CONDITION, sid, data)

    # -- the run -----------------------------------------------------------------------------
    async def restore(self, committed: list[str], reset: list[str]) -> dict[str, dict[str, Any]]:
        """Take the steps committed earlier into the mirror, and set the steps that did not
        finish back to pending. Returns what failed attempts of those spent, by step."""
        for sid in committed:
            rec = self.run.steps[sid]
            self.set_ctx(sid, rec.output, rec.status)
            for part in step_spent(rec.usage, None):
                self.add_usage(part)
        for sid in reset:
            was = {"was": self.run.steps[sid].status.value}
            self.store.append_event(Event(self.run_id, EventKind.STEP_RESET, sid, was))
        if reset:
            await self.store.reset_steps(self.run_id, reset)
        spent_before: dict[str, dict[str, Any]] = {}
        for sid in reset:
            rec = self.run.steps[sid]
            rec.status, rec.finished_at = StepStatus.PENDING, None
            spent = rec.detail.get("usage") if rec.detail else None
            if isinstance(spent, dict):  # spent by its failed attempts: still counts
                spent_before[sid] = spent
                self.add_usage(spent)
        return spent_before

    async def begin(self, owner: str, now: float, metrics: dict[str, Any] | None) -> None:
        more: dict[str, Any] = {} if metrics is None else {"metrics": metrics}
        await self.store.set_run(
            self.run_id, status=RunStatus.RUNNING, owner=owner, started_at=now, error=None, **more
        )
        run = self.run
        run.status, run.owner, run.started_at = RunStatus.RUNNING, owner, now
        run.error = run.finished_at = None
        if metrics is not None:
            run.metrics = metrics

    async def end(
        self,
        status: RunStatus,
        error: str | None,
        finished: float | None,
        metrics: dict[str, Any],
        history: HistoryEntry | None,
    ) -> None:
        """Record how the run ended (its workflow history first: whoever sees the run
        finished sees it in the history), and make everything queued durable."""
        if history is not None:
            try:
                await self.store.record_history(history)
            except HistoryWriteError:  # changes nothing about how the run ended
                log.warning(
                    "run %s finished; its workflow history was not recorded",
                    self.run_id,
                    exc_info=True,
                )
        await self.store.set_run(
            self.run_id,
            status=status,
            error=error,
            finished_at=finished,
            owner=None,
            metrics=metrics,
        )
        await self.store.flush()

    # -- steps -------------------------------------------------------------------------------
    def step_started(self, sid: str, attempt: int, at: float, *, lasting: bool) -> None:
        self.store.note_step_started(self.run_id, sid, attempt, at)
        if lasting and not self._flush_pending and self.spawn is not None:
            self._flush_pending = True
            self.spawn(self._flush_started)
        rec = self.run.steps[sid]
        rec.status, rec.attempts, rec.started_at = StepStatus.RUNNING, attempt, at
        if self.on_event is not None:
            self.emit(EventKind.STEP_STARTED, sid, {"attempt": attempt})

    async def _flush_started(self) -> None:
        """Commit queued "step started" records once the steps starting now have started."""
        await anyio.sleep(0)
        self._flush_pending = False
        await self.store.flush()

    async def commit(
        self,
        sid: str,
        output: Any,
        usage: dict[str, Any] | None,
        attempt: int,
        started: float | None,
        status: StepStatus,
        *,
        executor: str,
        error: str | None = None,
        earlier: dict[str, Any] | None = None,
    ) -> None:
        """A step's checkpoint: its output, status and event in one store transaction."""
        if earlier:  # counted in the totals when those attempts failed
            usage = {**(usage or {}), EARLIER: earlier}
        self._seq += 1
        cp = Checkpoint(
            step_id=sid,
            seq=self._seq,
            status=status,
            output=output,
            attempts=attempt,
            started_at=started,
            finished_at=self.clock(),
            usage=usage,
            executor=executor,
            error=error,
        )
        await self.store.commit_checkpoint(self.run_id, cp)
        rec = self.run.steps[sid]
        rec.status, rec.output, rec.usage, rec.seq = status, output, usage, cp.seq
        rec.detail = None
        rec.attempts, rec.started_at, rec.finished_at = attempt, started, cp.finished_at
        rec.executor, rec.error = executor, error
        self.add_usage(usage)
        self.set_ctx(sid, output, status)

    async def fail(self, sid: str, err: StepError, attempt: int, detail: FailureDetail) -> None:
        await self.set_step(
            sid,
            StepStatus.FAILED,
            attempts=attempt,
            error=str(err),
            finished_at=self.clock(),
            detail=detail,
        )
        self.ctx[sid] = {"output": None, "results": None, "status": "failed", "error": str(err)}

    async def skip(self, sid: str, reason: str) -> None:
        await self.set_step(sid, StepStatus.SKIPPED, detail={"reason": reason})
        self.ctx[sid] = {"output": None, "results": None, "status": "skipped", "error": None}

    async def hand_off(
        self, sid: str, attempt: int, started: float, request: ClientRequest
    ) -> None:
        await self.set_step(
            sid, StepStatus.WAITING, attempts=attempt, started_at=started, detail=request
        )

    def adopt(
        self, sid: str, rec_output: Any, status: StepStatus, usage: Mapping[str, Any] | None
    ) -> None:
        """A step committed by another process (a client's result): into the mirror."""
        self.add_usage(usage)
        self.set_ctx(sid, rec_output, status)

    async def set_step(
        self,
        sid: str,
        status: StepStatus,
        *,
        detail: StepDetail | None = None,
        **fields: Any,
    ) -> None:
        """Record a step's new status durably, and in the mirror (so the final record
        needs no reload)."""
        if detail is not None:
            fields["detail"] = detail
        await self.store.set_step(self.run_id, sid, status, **fields)
        rec = self.run.steps[sid]
        rec.status = status
        for k, v in fields.items():
            setattr(rec, k, v)

    async def expand(self, parent: str, steps: list[tuple[str, dict[str, Any]]]) -> None:
        """Steps added to the run under `parent` (a `foreach` step's instances, with their
        items), durably, before any of them runs."""
        run_steps = self.run.steps
        start = sum(1 for rec in run_steps.values() if rec.parent == parent)
        await self.store.add_steps(self.run_id, parent, steps, start)
        for sid, scope in steps:
            run_steps[sid] = StepRecord(sid, parent=parent, scope=scope)
        run_steps[parent].status = StepStatus.RUNNING

    def set_ctx(self, sid: str, output: Any, status: StepStatus) -> None:
        state = _STATUS_TEXT[status]
        self.ctx[sid] = {
            "output": output,
            "results": output,
            "outputs": output,  # a foreach step's: its instances' outputs, in item order
            "status": state,
            "error": None,
        }

    def add_usage(self, usage: Mapping[str, Any] | None) -> None:
        if usage:
            self.totals.input_tokens += int(usage.get("input_tokens", 0))
            self.totals.output_tokens += int(usage.get("output_tokens", 0))
            self.totals.cost_usd += float(usage.get("cost_usd") or 0.0)
