"""Steps handed to the client. A result reported in this process arrives through
`check`, then the runner commits it; one committed by another process (a second server,
the CLI) is seen by polling the store while steps wait."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from tutti_mcp.engine.errors import (
    StepError,
    StepErrorKind,
    StepNotWaiting,
    StepOutputRejected,
    UnknownStep,
)
from tutti_mcp.engine.execution.attempts import HandedOff
from tutti_mcp.engine.execution.ledger import RunLedger
from tutti_mcp.engine.gates import GateRejected, gate_answer, rejection_of, timed_out
from tutti_mcp.engine.modes.pipeline.client_batches import check_answer
from tutti_mcp.engine.outputs import shape_output
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import (
    EventKind,
    FailureDetail,
    RunRecord,
    StepRecord,
    StepStatus,
)
from tutti_mcp.memory.runs.store import RunStore


class ClientSteps:
    def __init__(
        self,
        store: RunStore,
        run: RunRecord,
        wf: Workflow,
        poll_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock  # the run's: when a gate's answer was taken
        self.run = run  # the ledger's mirror: read here, never written
        self.run_id = run.id
        self.wf = wf
        self.poll_s = poll_s
        self.waiting: set[str] = set()
        self.resting = False  # nothing more can happen in this execution
        self._wake = anyio.Event()
        # waiting gates with a timeout: step -> (deadline on anyio's clock, on the run's)
        self.deadlines: dict[str, tuple[float, float]] = {}

    def check(self, sid: str, output: Any, error: str | None) -> Any:
        """The output to commit for a result the client reports, or a condition-named
        error when the report cannot be taken."""
        if sid not in self.wf.steps:
            raise UnknownStep(self.run_id, sid, self.wf.order)
        if sid not in self.waiting:
            raise StepNotWaiting(self.run_id, sid, self.run.steps[sid].status.value)
        p = self.wf.steps[sid].pipeline
        if p is not None:  # a batch of a pipeline's items: an answer per item
            return check_answer(sid, p, self.run.steps[sid].request, output, error)
        if self.wf.steps[sid].approve is not None:  # an approval gate: yes, or a rejection
            answer = gate_answer(sid, output, error, at=self.clock())
            return answer if answer["approved"] else GateRejected(sid, answer)
        if error is not None:
            return None
        try:
            return shape_output(self.wf.steps[sid], output)
        except StepError as exc:
            raise StepOutputRejected(sid, str(exc)) from None

    def wake(self, *, resting: bool = False) -> None:
        """Something changed that the watcher should look at."""
        self.resting = self.resting or resting
        self._wake.set()

    def expire_at(self, sid: str, deadline: float, now: float) -> None:
        """Gate `sid`, handed off, counts as rejected at `deadline` (the run's clock, which
        reads `now`) unless answered before. It waits from now (the runner records the
        handoff next): the watcher must not take its deadline for one of a gate answered."""
        self.waiting.add(sid)
        self.deadlines[sid] = (anyio.current_time() + deadline - now, deadline)
        self.wake()

    async def watch(self, settle: Callable[[list[StepRecord]], Awaitable[None]]) -> None:
        """Attached runs wait here while steps wait on the client: every `poll_s`, steps
        settled by another process are read from the store and handed to `settle`; gates
        whose deadline passed go to `settle` as rejected."""
        while not self.resting:
            for sid in [s for s in self.deadlines if s not in self.waiting]:
                del self.deadlines[sid]  # answered
            wait = self.poll_s
            if self.deadlines:
                soonest = min(at for at, _ in self.deadlines.values())
                wait = min(wait, max(0.0, soonest - anyio.current_time()))
            with anyio.move_on_after(wait) as scope:
                await self._wake.wait()
            self._wake = anyio.Event()
            expired = self._expired()
            if expired and not self.resting:
                await settle(expired)
            if scope.cancelled_caught and self.waiting and not self.resting:
                run = await self.store.load_run(self.run_id)
                await settle([run.steps[sid] for sid in sorted(self.waiting)])

    def _expired(self) -> list[StepRecord]:
        """Gates past their deadline, as records of their rejection by timeout."""
        now = anyio.current_time()
        out = []
        for sid, (at, deadline) in list(self.deadlines.items()):
            if at <= now and sid in self.waiting:
                del self.deadlines[sid]
                timeout = self.wf.steps[sid].timeout or 0.0
                detail: FailureDetail = {"decision": timed_out(sid, timeout, deadline).decision}
                rec = self.run.steps[sid]
                out.append(
                    StepRecord(
                        sid,
                        StepStatus.FAILED,
                        rec.attempts,
                        started_at=rec.started_at,
                        detail=detail,
                    )
                )
        return out

    @staticmethod
    def settled_elsewhere(rec: StepRecord) -> bool | None:
        """True: committed with an output; False: reported failed; None: still waiting."""
        if rec.status.has_output and rec.seq is not None:
            return True
        if rec.status is StepStatus.FAILED:
            return False
        return None

    def answered_elsewhere(self, rec: StepRecord) -> bool:
        """A pipeline's batch answered by another process (its items committed there, the
        step set back to pending): it waits no more, and runs on."""
        step = self.wf.steps.get(rec.step_id)
        if rec.status is not StepStatus.PENDING or step is None or step.pipeline is None:
            return False
        self.waiting.discard(rec.step_id)
        return True

    async def hand_off(self, sid: str, handed: HandedOff, ledger: RunLedger) -> None:
        """The step waits for the client, durably, with what it is asked."""
        await ledger.hand_off(sid, handed.attempt, handed.started, handed.request)
        self.waiting.add(sid)
        ledger.emit(EventKind.STEP_WAITING, sid, {"request": handed.request})


def client_failure(rec: StepRecord) -> StepError:
    """What a failure the client reported (or a gate's rejection) means for the step."""
    rejected = rejection_of(rec)
    if rejected is not None:
        return rejected
    return StepError(
        rec.error or "the client reported a failure", retryable=False, kind=StepErrorKind.CLIENT
    )
