"""Approval gates: the question is asked through MCP elicitation where the connected client
offers it, else the gate is handed to the calling agent (a client task) to put to its
user, or answered from a terminal with `tutti approve`.

The engine knows nothing of MCP: the server passes in an `Asker` (tools/elicitation.py)
that puts an `ApprovalQuestion` to the user of the client connected to the run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import anyio

from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.gate_spec import reject_target
from tutti_mcp.engine.gates import GateRejected, approval_request, decision, timed_out

log = logging.getLogger("tutti.gates")


@dataclass(frozen=True)
class ApprovalQuestion:
    run_id: str
    step_id: str
    question: str
    preview: str | None


@dataclass(frozen=True)
class ApprovalAnswer:
    approve: bool
    note: str | None = None


class Asker(Protocol):
    """Puts a question to the user; None when it cannot be asked there (no client that
    offers elicitation, or the asking failed): the gate then becomes a client task."""

    async def __call__(self, question: ApprovalQuestion) -> ApprovalAnswer | None: ...


class GateExecutor:
    def __init__(self, asker: Asker | None = None) -> None:
        self.asker = asker

    async def execute(self, call: StepCall) -> StepOutcome:
        """A gate asked afresh: its timeout counts from now."""
        timeout = call.step.timeout
        now = time.time()
        return await self.decide(call, None if timeout is None else now + timeout, now)

    async def decide(self, call: StepCall, deadline: float | None, now: float) -> StepOutcome:
        """Ask the gate's question: the approved decision as output, GateRejected for a
        no (or no answer by `deadline`, in seconds since the epoch like `now`), or the
        gate handed to the client (`handoff`)."""
        step = call.step
        assert step.approve is not None
        question = await call.render_async(step.approve)
        preview = await call.render_async(step.preview) if step.preview is not None else None
        if deadline is not None and now >= deadline:
            raise timed_out(step.id, step.timeout or 0.0, deadline)
        if self.asker is not None:
            # bounded: by the gate's timeout, else by the step timeout of the spec's
            # defaults, after which the question waits as a client task instead
            limit = call.timeout_s if deadline is None else deadline - now
            asked = ApprovalQuestion(call.run_id, step.id, question, preview)
            with anyio.move_on_after(limit) as scope:
                answer = await self.asker(asked)
            if scope.cancelled_caught:
                if deadline is not None:
                    raise timed_out(step.id, step.timeout or 0.0, deadline)
                log.info("gate %s of run %s: no answer by elicitation", step.id, call.run_id)
                answer = None
            if answer is not None:
                made = decision(answer.approve, answer.note, "elicitation")
                if not answer.approve:
                    raise GateRejected(step.id, made)
                return StepOutcome(output=made)
        request = approval_request(
            call.run_id, step, call.attempt, question, preview, deadline, reject_target(step)
        )
        return StepOutcome(handoff=request)
