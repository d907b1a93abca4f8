"""What crosses Temporal's wire between the run's workflow and the workers' activities: a
step's call, its outcome or its error, and the run's record, as JSON values.

The call carries the step's definition (a loop's or foreach's instance is not in the spec
as written) and only the part of the template context the step reads: its dependencies'
results, the inputs and any iteration variables."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from tutti_mcp.engine.errors import StepError, StepErrorKind
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.spec import Step, ThinkingMode
from tutti_mcp.engine.thinking import ThinkingChoice
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus

STEP_ERROR = "tutti.StepError"  # the ApplicationError type of a step's failed attempt


def call_to_json(call: StepCall, step_ids: Collection[str]) -> dict[str, Any]:
    context = {k: v for k, v in call.context.items() if k not in step_ids or k in call.deps}
    th = call.thinking
    return {
        "run_id": call.run_id,
        "step": call.step.model_dump(mode="json", exclude_defaults=True),
        "attempt": call.attempt,
        "context": context,
        "deps": list(call.deps),
        "timeout_s": call.timeout_s,
        "workspace": str(call.workspace),
        "thinking": None
        if th is None
        else {
            "mode": th.mode.value,
            "requested": th.requested.value,
            "score": th.score,
            "reasons": list(th.reasons),
        },
        "model": None if call.model is None else call.model.id,
        "workflow": call.workflow,
    }


def to_wire(value: Any) -> str:
    """A value as JSON text: Temporal's JSON converter would sort the keys of every object,
    and a step's template may read an output's keys in the order the step wrote them."""
    return json.dumps(value, separators=(",", ":"))


def from_wire(text: str) -> Any:
    return json.loads(text)


def call_from_json(data: Mapping[str, Any], models: ModelTable, workspace: Path) -> StepCall:
    th = data.get("thinking")
    model = data.get("model")
    return StepCall(
        run_id=data["run_id"],
        step=_step_from_json(data["step"]),
        attempt=data["attempt"],
        context=data["context"],
        deps=tuple(data["deps"]),
        timeout_s=data["timeout_s"],
        workspace=workspace,
        thinking=None
        if th is None
        else ThinkingChoice(
            ThinkingMode(th["mode"]),
            ThinkingMode(th["requested"]),
            th["score"],
            tuple(th["reasons"]),
        ),
        model=None if model is None else models.resolve(model),
        workflow=data["workflow"],
    )


def _step_from_json(data: Mapping[str, Any]) -> Step:
    """A step's definition; a step added at run time (`greet[0]`, `draft#2`) has an id no
    spec may use, so the definition is checked under its spec's id, then given its own."""
    sid = data["id"]
    written = re.split(r"[\[#]", sid, maxsplit=1)[0] or "step"
    return Step.model_validate({**data, "id": written}).model_copy(update={"id": sid})


def outcome_to_json(outcome: StepOutcome) -> dict[str, Any]:
    if outcome.handoff is not None:  # only the client executor hands off, in the workflow
        raise ValueError("a handed-off outcome does not cross to a worker")
    return {
        "output": outcome.output,
        "usage": outcome.usage,
        "cost_usd": outcome.cost_usd,
        "warning": outcome.warning,
    }


def outcome_from_json(data: Mapping[str, Any]) -> StepOutcome:
    return StepOutcome(
        output=data.get("output"),
        usage=data.get("usage"),
        cost_usd=data.get("cost_usd"),
        warning=data.get("warning"),
    )


def error_to_json(err: StepError) -> dict[str, Any]:
    return {
        "message": str(err),
        "retryable": err.retryable,
        "kind": err.kind.value,
        "usage": err.usage,
    }


def error_from_json(data: Mapping[str, Any]) -> StepError:
    try:
        kind = StepErrorKind(data.get("kind", "error"))
    except ValueError:
        kind = StepErrorKind.ERROR
    return StepError(
        str(data.get("message", "the step failed on a worker")),
        retryable=bool(data.get("retryable", True)),
        kind=kind,
        usage=data.get("usage"),
    )


def run_to_json(run: RunRecord) -> dict[str, Any]:
    out = dataclasses.asdict(run)
    # Temporal's JSON converter sorts object keys: the steps' order goes alongside
    out["step_order"] = list(run.steps)
    return out


def run_from_json(data: Mapping[str, Any]) -> RunRecord:
    fields = dict(data)
    fields.pop("blocked_on_client", None)
    fields.pop("rolls", None)
    stored = fields.pop("steps", {})
    order = fields.pop("step_order", None) or list(stored)
    steps = {
        sid: StepRecord(**{**stored[sid], "status": StepStatus(stored[sid]["status"])})
        for sid in order
    }
    return RunRecord(**{**fields, "status": RunStatus(fields["status"])}, steps=steps)
