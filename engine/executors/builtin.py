"""Built-in transforms: template rendering, JSON values, pass-through, merge, parse, wait."""

from __future__ import annotations

import json
from typing import Any

import anyio

from tutti_mcp.engine.errors import StepError, StepErrorKind
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.spec import BuiltinOp, Step


class BuiltinExecutor:
    def max_duration(self, step: Step) -> float | None:
        """An upper bound on how long the step can take, when one is known: every op but
        `wait` only renders templates, which the template limits stop within about a second
        of CPU (engine.template_limits), so it is counted as instant and needs no cancel
        scope; a `wait` of a literal number waits that."""
        if step.builtin_op is not BuiltinOp.WAIT:
            return 0.0
        value = step.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    async def execute(self, call: StepCall) -> StepOutcome:
        step = call.step
        op = step.builtin_op
        if op is BuiltinOp.TEMPLATE:
            return StepOutcome(await call.render_async(step.args or ""))
        if op is BuiltinOp.JSON:
            return StepOutcome(await call.render_value_async(step.value))
        if op is BuiltinOp.PASS:
            if step.value is not None:
                return StepOutcome(await call.render_value_async(step.value))
            outputs = call.dep_outputs()
            if len(outputs) == 1:
                return StepOutcome(next(iter(outputs.values())))
            return StepOutcome(outputs or None)
        if op is BuiltinOp.MERGE:
            return StepOutcome(call.dep_outputs())
        if op is BuiltinOp.PARSE_JSON:
            text = await call.render_async(step.args or "")
            try:
                return StepOutcome(json.loads(text))
            except json.JSONDecodeError as exc:
                raise StepError(
                    f"not valid JSON: {exc}", retryable=False, kind=StepErrorKind.PARSE
                ) from None
        if op is BuiltinOp.WAIT:
            seconds = _seconds(await call.render_value_async(step.value))
            await anyio.sleep(seconds)
            return StepOutcome(
                await call.render_async(step.args) if step.args is not None else seconds
            )
        raise AssertionError(op)


def _seconds(value: Any) -> float:
    try:
        seconds = float(value or 0)
    except (TypeError, ValueError):
        raise StepError(
            f"wait needs a number of seconds in `value`, got {value!r}", retryable=False
        ) from None
    if seconds < 0:
        raise StepError("wait needs a non-negative number of seconds", retryable=False)
    return seconds
