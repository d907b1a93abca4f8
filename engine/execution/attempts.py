"""A step's attempts: each under its timeout, retried with backoff while its error is
retryable, every error mapped to a StepError. What comes out is a value (succeeded, handed
to the client, failed for good); the runner decides what that means for the run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.errors import ConfigurationError, StepError, StepErrorKind, TemplateError
from tutti_mcp.engine.execution.context import RunContext
from tutti_mcp.engine.execution.ledger import RunLedger, over_budget
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.models import ModelInfo
from tutti_mcp.engine.outputs import shaped
from tutti_mcp.engine.plan import Plan
from tutti_mcp.engine.spec import ExecutorKind, RetryPolicy, Step, WorkflowSpec
from tutti_mcp.engine.thinking import ThinkingChoice
from tutti_mcp.engine.usage import add_usage
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import ClientRequest, EventKind


def step_error(exc: Exception, timeout_s: float, attempt: int) -> StepError:
    """What an attempt's exception means for the step (pure)."""
    if isinstance(exc, TimeoutError):
        return StepError(
            f"timed out after {timeout_s:g}s (attempt {attempt})", kind=StepErrorKind.TIMEOUT
        )
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, (TemplateError, ConfigurationError)):
        return StepError(str(exc), retryable=False, kind=StepErrorKind.of_refusal(exc))
    # the step boundary: an executor's error fails the step, not the run
    return StepError(f"{type(exc).__name__}: {exc}", kind=StepErrorKind.EXCEPTION)


@dataclass(slots=True)
class Succeeded:
    output: Any
    outcome: StepOutcome
    attempt: int
    started: float
    spent: dict[str, Any] | None  # what earlier, failed attempts consumed


@dataclass(slots=True)
class HandedOff:
    request: ClientRequest
    attempt: int
    started: float


@dataclass(slots=True)
class Failed:
    error: StepError
    attempt: int
    started: float | None
    spent: dict[str, Any] | None


AttemptResult = Succeeded | HandedOff | Failed


@dataclass(slots=True)
class StepSetup:
    """What every attempt of one step shares, worked out once per execution."""

    kind: ExecutorKind
    retry: RetryPolicy
    timeout_s: float
    bounded: bool  # ends before its timeout could fire: no cancel scope needed
    lasting: bool  # takes a while: its "running" state is worth committing early
    thinking: ThinkingChoice | None
    model: ModelInfo | None


class Attempts:
    def __init__(
        self,
        ctx: RunContext,
        ledger: RunLedger,
        core: RunCore,
        spec: WorkflowSpec,
        workspace: Path,
    ) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self.core = core
        self.spec = spec
        self.workspace = workspace
        self.budgeted = spec.budget.max_cost_usd is not None or spec.budget.max_tokens is not None

    def check_budget(self) -> None:
        if not self.budgeted:
            return
        why = over_budget(self.spec.budget, self.ledger.totals)
        if why is not None:
            self.core.stop(why)

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
        """Attempt `step` until it succeeds, is handed off, or fails for good (no retry
        once the run stopped starting steps)."""
        sid = step.id
        policy = setup.retry
        executor = self.ctx.executors.get(setup.kind)
        clock = self.ctx.config.clock
        if executor is None:  # preflight lets only a swarm's escalation to the caller by
            err = StepError(
                f"no {setup.kind.value} executor here to hand step {sid!r} to: run the "
                "workflow from an MCP client or with `tutti run`, which can hand it over",
                retryable=False,
                kind=StepErrorKind.CONFIGURATION,
            )
            return Failed(err, prior_attempts + 1, clock(), None)
        attempt = prior_attempts
        first_start: float | None = None
        ledger = self.ledger
        for n in range(1, policy.attempts + 1):
            attempt += 1
            started = clock()
            first_start = first_start or started
            ledger.step_started(sid, attempt, started, lasting=setup.lasting)
            call = StepCall(
                run_id=ledger.run_id,
                step=step,
                attempt=attempt,
                context=ledger.ctx if context is None else context,
                deps=deps,
                timeout_s=setup.timeout_s,
                workspace=self.workspace,
                thinking=setup.thinking,
                model=setup.model,
                workflow=self.spec.name,
            )
            try:
                if setup.bounded:
                    outcome = await executor.execute(call)
                else:
                    with anyio.fail_after(setup.timeout_s):
                        outcome = await executor.execute(call)
                if outcome.handoff is not None:
                    return HandedOff(outcome.handoff, attempt, started)
                return Succeeded(shaped(step, outcome), outcome, attempt, first_start, spent)
            except Exception as exc:
                err = step_error(exc, setup.timeout_s, attempt)
            if err.usage:
                spent = add_usage(spent, err.usage)
                ledger.add_usage(err.usage)
                self.check_budget()
            ledger.totals.errors.setdefault(sid, []).append(str(err))
            if not err.retryable or n == policy.attempts or self.core.stop_reason is not None:
                return Failed(err, attempt, first_start, spent)
            delay = policy.delay(n, self.ctx.config.rand())
            ledger.emit(
                EventKind.STEP_RETRYING,
                sid,
                {"attempt": attempt, "error": str(err), "delay_s": delay},
            )
            await anyio.sleep(delay)
        raise AssertionError("a retry policy allows at least one attempt")


def step_setup(ctx: RunContext, wf: Workflow, plan: Plan, sid: str) -> StepSetup:
    """What every attempt of step `sid` of `wf` (planned as `plan`) shares: worked out
    when it first runs (a resumed run with most steps committed pays nothing for those)."""
    spec = wf.spec
    step, kind = wf.steps[sid], wf.executors[sid]
    timeout = step.timeout or spec.defaults.timeout
    max_duration = getattr(ctx.executors.get(kind), "max_duration", None)
    bound = max_duration(step) if max_duration is not None else None
    # an executor that enforces the step's timeout itself (a Temporal activity)
    timed = bool(getattr(ctx.executors.get(kind), "times_itself", False))
    thinking = plan.steps[sid].thinking
    return StepSetup(
        kind=kind,
        retry=step.retry or spec.defaults.retry,
        timeout_s=timeout,
        bounded=(bound is not None and bound < timeout) or timed,
        # quick steps fold their "running" state into their completion's commit
        lasting=bound is None or bound > 0.005,
        thinking=thinking,
        model=ctx.config.models.resolve(wf.model_ids[sid]) if thinking else None,
    )
