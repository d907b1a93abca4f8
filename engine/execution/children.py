"""`workflow` steps: a step that runs a whole workflow as a child run, linked to its parent
(`parent_run_id`) and named after it (`PARENT.STEP`), so that when the parent runs the step
again (it was resumed) the same child is resumed where it stopped, and a child that
finished is not run again. This is how modes mix: a chain whose step is a flow, a loop or a
fan-out of its own.

The step's output is the child's outputs by step; what the child spent counts as the
step's usage. A child that fails fails the step (its `on_failure` applies); a child that
waits for the client leaves the step waiting, saying which run to complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tutti_mcp.engine.errors import StepError, TemplateError, TuttiError
from tutti_mcp.engine.execution.attempts import (
    AttemptResult,
    Failed,
    HandedOff,
    StepSetup,
    Succeeded,
)
from tutti_mcp.engine.execution.context import ChildRuns
from tutti_mcp.engine.execution.ledger import RunLedger
from tutti_mcp.engine.executors.base import StepOutcome
from tutti_mcp.engine.spec import ExecutorKind, Step, WorkflowSpec, load_spec_file
from tutti_mcp.engine.templating import render_value_async
from tutti_mcp.memory.runs.records import ClientRequest, RunRecord, RunStatus

MAX_DEPTH = 8  # child runs of child runs: a spec file that runs itself stops here


def child_run_id(parent_id: str, step_id: str) -> str:
    return f"{parent_id}.{step_id}"


class ChildSteps:
    def __init__(
        self,
        children: ChildRuns | None,
        ledger: RunLedger,
        clock: Any,
        workspace: Path,
        model_executor: ExecutorKind | None,
    ) -> None:
        self.children = children
        self.model_executor = model_executor
        self.ledger = ledger
        self.clock = clock
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
        """Run (or resume) the step's child to where it rests (as Attempts.run runs a step;
        the child's own steps retry as they say, so the step is not retried)."""
        sid, attempt, started = step.id, prior_attempts + 1, self.clock()
        ledger = self.ledger
        ledger.step_started(sid, attempt, started, lasting=True)
        try:
            if self.children is None:
                raise StepError("this engine cannot run child workflows", retryable=False)
            if ledger.run_id.count(".") >= MAX_DEPTH:  # run ids have no dots of their own
                raise StepError(
                    f"child workflows nest {MAX_DEPTH} deep here: does a spec run itself?",
                    retryable=False,
                )
            inputs = await render_value_async(step.inputs, context or ledger.ctx)
            child = await self.children.run_child(
                ledger.run_id, sid, self._spec(step), inputs, self.workspace
            )
        except (StepError, TemplateError, TuttiError) as exc:
            err = exc if isinstance(exc, StepError) else StepError(str(exc), retryable=False)
            return Failed(err, attempt, started, spent)
        if child.status is RunStatus.SUCCEEDED:
            return Succeeded(*_result(child), attempt, started, spent)
        if child.status is RunStatus.WAITING:
            return HandedOff(_waiting(sid, child, attempt), attempt, started)
        why = child.error or child.status.value
        err = StepError(f"child run {child.id} {child.status.value}: {why}", retryable=False)
        return Failed(err, attempt, started, spent)

    def _spec(self, step: Step) -> WorkflowSpec:
        spec = self._read(step)
        if spec.defaults.model_executor is None and self.model_executor is not None:
            # where the parent's model steps run, the child's do too (`tutti run --client`)
            defaults = spec.defaults.model_copy(update={"model_executor": self.model_executor})
            spec = spec.model_copy(update={"defaults": defaults})
        return spec

    def _read(self, step: Step) -> WorkflowSpec:
        if isinstance(step.workflow, WorkflowSpec):
            return step.workflow
        assert step.workflow is not None  # a path, checked relative at compile time
        root = self.workspace.resolve()
        path = (root / step.workflow).resolve()
        if not path.is_relative_to(root):
            raise StepError(
                f"workflow {step.workflow!r} leads outside the workspace {root}", retryable=False
            )
        return load_spec_file(path, source=step.workflow, follow_symlinks=False)


def _result(child: RunRecord) -> tuple[dict[str, Any], StepOutcome]:
    """The child's outputs by step (its own steps, not those it added), and what it spent."""
    outputs = {
        sid: rec.output
        for sid, rec in child.steps.items()
        if rec.parent is None and rec.status.has_output
    }
    m = child.metrics or {}
    tokens = {k: v for k, v in (m.get("tokens") or {}).items() if v}
    return outputs, StepOutcome(outputs, tokens or None, m.get("cost_usd"))


def _waiting(sid: str, child: RunRecord, attempt: int) -> ClientRequest:
    steps = [s for s, rec in child.steps.items() if rec.status.value == "waiting"]
    return {
        "step_id": sid,
        "instructions": (
            f"Step {sid!r} runs the workflow of child run {child.id}, which waits for you at "
            f"{', '.join(steps)}. Do those steps of run {child.id} (workflow_status shows "
            f"them; report each with step_complete on run {child.id}), then resume this run: "
            "the child goes on, and this step with it."
        ),
        "attempt": attempt,
        "idempotency_key": child.id,
        "child_run": child.id,
    }
