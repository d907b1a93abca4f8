"""A step's output in the shape its spec asks for: text as produced, or JSON (parsed from
the text, or from a fenced block in it) checked against the step's `json_schema`."""

from __future__ import annotations

import json
import re
from typing import Any

from tutti_mcp.engine.errors import StepError, StepErrorKind
from tutti_mcp.engine.executors.base import StepOutcome
from tutti_mcp.engine.spec import Step

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def shape_output(step: Step, value: Any) -> Any:
    """Apply the step's `output` shape: `json` parses text (the text, else a fenced block in
    it) and checks the result against the step's `json_schema`."""
    if step.output != "json":
        return value
    if isinstance(value, str):
        value = _parse_json(value)
    if step.json_schema is not None:
        import jsonschema  # only steps with a json_schema pay for importing it

        problem = jsonschema.exceptions.best_match(
            jsonschema.validators.validator_for(step.json_schema)(step.json_schema).iter_errors(
                value
            )
        )
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "the top level"
            raise StepError(
                f"output does not match the step's `json_schema` at {where}: {problem.message}",
                kind=StepErrorKind.SCHEMA,
            )
    return value


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        m = _FENCE.search(text)
        if m is None:
            raise StepError(
                f"output is not valid JSON ({exc}); the step says `output: json`",
                kind=StepErrorKind.PARSE,
            ) from None
    try:
        return json.loads(m.group(1))
    except json.JSONDecodeError as exc:
        raise StepError(
            f"output is not valid JSON ({exc}); the step says `output: json`",
            kind=StepErrorKind.PARSE,
        ) from None


def shaped(step: Step, outcome: StepOutcome) -> Any:
    """The outcome's output in the step's shape; a shape error keeps what the call spent."""
    try:
        return shape_output(step, outcome.output)
    except StepError as exc:
        usage = outcome.usage
        if usage is not None and outcome.cost_usd is not None:
            usage = {**usage, "cost_usd": outcome.cost_usd}
        raise StepError(str(exc), retryable=exc.retryable, kind=exc.kind, usage=usage) from None
