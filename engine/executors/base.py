"""The executor interface: the scheduler hands a `StepCall` to the executor of the
step's kind and gets a `StepOutcome` back (or a StepError)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tutti_mcp.engine.models import ModelInfo
from tutti_mcp.engine.spec import Step
from tutti_mcp.engine.templating import render, render_async, render_value, render_value_async
from tutti_mcp.engine.thinking import ThinkingChoice
from tutti_mcp.memory.runs.records import ClientRequest


@dataclass
class StepCall:
    """One attempt of one step, with what the executor needs to do it."""

    run_id: str
    step: Step
    attempt: int
    context: Mapping[str, Any]  # template context: inputs and finished steps
    deps: tuple[str, ...]
    timeout_s: float
    workspace: Path
    thinking: ThinkingChoice | None = None
    model: ModelInfo | None = None
    workflow: str = ""  # the spec's name (the scope of `memory: workflow`)

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes of the same step of the same run."""
        if self.step.idempotency_key:
            return self.render(self.step.idempotency_key)
        return f"{self.run_id}:{self.step.id}"

    def render(self, text: str) -> str:
        return render(text, self.context)

    def render_value(self, value: Any) -> Any:
        return render_value(value, self.context)

    async def render_async(self, text: str) -> str:
        """`render`, off the event loop when the template is more than a little work."""
        return await render_async(text, self.context)

    async def render_value_async(self, value: Any) -> Any:
        return await render_value_async(value, self.context)

    def dep_outputs(self) -> dict[str, Any]:
        return {d: self.context[d]["output"] for d in self.deps if d in self.context}


@dataclass
class StepOutcome:
    output: Any = None
    usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    # Set by the client executor: the step waits for the caller, who gets this request.
    handoff: ClientRequest | None = None
    # Something the step's output does not say by itself (an accepted truncation): shown
    # with the step in status, result and report.
    warning: str | None = None


class StepExecutor(Protocol):
    async def execute(self, call: StepCall) -> StepOutcome: ...
