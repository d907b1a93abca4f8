"""The activity every step runs as, on a `tutti worker`: the same executors, the same shell
policy and model table as `tutti serve` builds from the worker's own settings.

An attempt's failure is a non-retryable ApplicationError carrying the StepError: tutti's
retry policy, in the workflow, decides about another attempt. Temporal itself retries only
what is not the step's doing (the worker died: the heartbeat stopped), with the same step
identity (run, step, attempt) and idempotency key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tutti_mcp.engine.errors import StepError, StepErrorKind
from tutti_mcp.engine.execution.attempts import step_error
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.temporal.codec import (
    STEP_ERROR,
    call_from_json,
    error_to_json,
    from_wire,
    outcome_to_json,
    to_wire,
)

STEP_ACTIVITY = "tutti.step"
_DEFAULT_BEAT = timedelta(seconds=30)


@dataclass
class StepActivities:
    executors: Mapping[ExecutorKind, StepExecutor]
    models: ModelTable
    # The worker's TUTTI_WORKSPACE: steps run there whatever the run's workspace says
    # (a run started on another machine names a directory of that machine).
    workspace: Path | None = None

    @activity.defn(name=STEP_ACTIVITY)
    async def execute_step(self, wire: str) -> str:
        payload: dict[str, Any] = from_wire(wire)
        kind = ExecutorKind(payload["kind"])
        call_data = payload["call"]
        executor = self.executors.get(kind)
        if executor is None:
            raise _failure(
                StepError(
                    f"this worker has no {kind.value} executor for step "
                    f"{call_data['step'].get('id')!r}: " + _missing_hint(kind),
                    retryable=False,
                )
            )
        workspace = self.workspace or Path(call_data["workspace"])
        try:
            call = call_from_json(call_data, self.models, workspace)
        except (ValueError, KeyError, TypeError) as exc:
            # Another worker would read it no better: the step's attempt fails, once, and
            # tutti's retry policy decides, instead of Temporal retrying it for minutes.
            raise _failure(
                StepError(
                    f"this worker cannot read step {call_data.get('step', {}).get('id')!r}: "
                    f"{exc}. Run the same tutti version on every worker and the server",
                    retryable=False,
                    kind=StepErrorKind.CONFIGURATION,
                )
            ) from None
        beat = max(0.2, (activity.info().heartbeat_timeout or _DEFAULT_BEAT).total_seconds() / 3)
        failed: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_heartbeat, beat)
            try:
                # the step's timeout, here where it runs: the workflow sets no timer per step
                with anyio.fail_after(call.timeout_s):
                    outcome = await executor.execute(call)
            # the step boundary, as in engine/execution/attempts.py; caught inside the task
            # group, which would wrap it in an ExceptionGroup and hide the StepError
            except Exception as exc:
                failed = exc
            finally:
                tg.cancel_scope.cancel()
        if failed is not None:
            raise _failure(step_error(failed, call.timeout_s, call.attempt)) from None
        return to_wire(outcome_to_json(outcome))


async def _heartbeat(every_s: float) -> None:
    while True:
        activity.heartbeat()
        await anyio.sleep(every_s)


def _failure(err: StepError) -> ApplicationError:
    return ApplicationError(str(err), error_to_json(err), type=STEP_ERROR, non_retryable=True)


def _missing_hint(kind: ExecutorKind) -> str:
    if kind is ExecutorKind.SHELL:
        return "set TUTTI_ALLOW_SHELL on the workers to the programs shell steps may run"
    if kind is ExecutorKind.PROMPT:
        return "set ANTHROPIC_API_KEY on the workers"
    return f"{kind.value} steps do not run on Temporal workers"
