"""Approval gates in a run's execution: asking (once, no retries), the deadline a gate
keeps across resumes, and what a rejection does to the run.

A gate handed to the client waits like a client step (status `waiting`, durable). Its
deadline is fixed when it is first handed off and kept in its request, so a resume does
not restart the clock: a run resumed after the deadline rejects the gate at once, and an
attached execution rejects it when the deadline passes (ClientSteps.watch)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.errors import ConfigurationError, StepError, TemplateError
from tutti_mcp.engine.execution.attempts import (
    AttemptResult,
    Failed,
    HandedOff,
    StepSetup,
    Succeeded,
    step_error,
)
from tutti_mcp.engine.execution.client_steps import ClientSteps
from tutti_mcp.engine.execution.context import RunContext
from tutti_mcp.engine.execution.ledger import RunLedger
from tutti_mcp.engine.executors.base import StepCall
from tutti_mcp.engine.executors.gate import GateExecutor
from tutti_mcp.engine.gate_spec import reject_target
from tutti_mcp.engine.gates import GateRejected, deadline_of
from tutti_mcp.engine.spec import ExecutorKind, Step, WorkflowSpec
from tutti_mcp.memory.runs.records import EventKind, FailureDetail


class GateSteps:
    def __init__(
        self,
        ctx: RunContext,
        ledger: RunLedger,
        core: RunCore,
        client: ClientSteps,
        spec: WorkflowSpec,
        workspace: Path,
    ) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self.core = core
        self.client = client
        self.spec = spec
        self.workspace = workspace

    async def run(
        self,
        step: Step,
        setup: StepSetup,
        deps: tuple[str, ...],
        *,
        prior_attempts: int,
        spent: dict[str, Any] | None,
        context: Mapping[str, Any] | None = None,
    ) -> AttemptResult:
        """Ask the gate (as Attempts.run runs a step): approved (its decision as output),
        rejected (Failed with a GateRejected), or handed to the client to wait for an
        answer. Asked once: no retries, no attempt timeout."""
        sid = step.id
        executor = self.ctx.executors[ExecutorKind.GATE]
        assert isinstance(executor, GateExecutor)
        clock = self.ctx.config.clock
        ledger = self.ledger
        earlier = deadline_of(ledger.run.steps[sid])  # handed off before this resume
        attempt = prior_attempts + 1
        started = clock()
        deadline = earlier
        if deadline is None and step.timeout is not None:
            deadline = started + step.timeout
        ledger.step_started(sid, attempt, started, lasting=True)
        call = StepCall(
            run_id=ledger.run_id,
            step=step,
            attempt=attempt,
            context=ledger.ctx if context is None else context,
            deps=deps,
            timeout_s=self.spec.defaults.timeout,
            workspace=self.workspace,
            workflow=self.spec.name,
        )
        try:
            outcome = await executor.decide(call, deadline, started)
        except (StepError, TemplateError, ConfigurationError) as exc:
            return Failed(step_error(exc, call.timeout_s, attempt), attempt, started, spent)
        if outcome.handoff is not None:
            if deadline is not None:
                self.client.expire_at(sid, deadline, clock())
            return HandedOff(outcome.handoff, attempt, started)
        return Succeeded(outcome.output, outcome, attempt, started, spent)

    async def reject(self, sid: str, err: GateRejected, attempt: int) -> None:
        """The gate was answered no (or not in time): record the decision, and let its
        on_reject say what follows."""
        action = self.core.rejected(sid, str(err))
        detail: FailureDetail = {
            "error_kind": err.kind.value,
            "retryable": False,
            "attempts": attempt,
            "errors": [str(err)],
            "policy": f"on_reject: {reject_target(self.core.wf.steps[sid]) or 'fail'}",
            "action": action.value,
            "decision": err.decision,
        }
        await self.ledger.fail(sid, err, attempt, detail)
        self.client.waiting.discard(sid)
        self.ledger.emit(
            EventKind.STEP_FAILED,
            sid,
            {"error": str(err), "action": action.value, "decision": err.decision},
        )
