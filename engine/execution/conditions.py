"""Whether a step runs: its `when`, or, inside an if block, its block's condition (every
step of the branch not taken says so, even one whose dependency was skipped first). Each
decision is recorded with the condition's value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tutti_mcp.engine.errors import TemplateError
from tutti_mcp.engine.execution.ledger import RunLedger
from tutti_mcp.engine.templating import evaluate_async
from tutti_mcp.engine.workflow import Workflow


async def decide(
    wf: Workflow,
    ledger: RunLedger,
    sid: str,
    when: str,
    skip: str | None,
    context: Mapping[str, Any],
) -> str | None:
    """Why step `sid` is skipped (`skip`, when it already was), or None to run it.
    `context` is what its templates read (a loop's steps see their iteration)."""
    guarded = wf.conditions.get(sid)
    if guarded is not None:
        decided = await guarded.check(context, guards_only=skip is not None)
        if skip is None or decided.skip is not None:
            ledger.condition(sid, decided.condition, decided.value)
        return decided.skip or skip
    try:
        result = bool(await evaluate_async(when, context))
    except TemplateError as exc:
        ledger.condition(sid, when, None)
        return f"condition could not be evaluated: {exc}"
    ledger.condition(sid, when, result)
    return None if result else f"condition is false: {when}"
