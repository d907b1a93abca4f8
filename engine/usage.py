"""Token usage of model calls, as recorded per step, and the sums taken over it.

A committed step's usage is its successful attempt's (token counts, `cost_usd`, model,
stop reason), with `earlier_attempts`: the summed usage of its failed attempts, when they
consumed any. A step that failed keeps its failed attempts' usage in `detail.usage`.
Every call that consumed tokens counts in the run's totals, whatever became of its step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "thinking_tokens",
)
EARLIER = "earlier_attempts"
TOOL_CALLS = "tool_calls"
MAX_TOOL_CALLS = 200  # of failed attempts, kept in a step's record


def add_usage(
    total: dict[str, Any] | None, more: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """`total` plus the token counts and cost of `more` (a new dict; None if both are None).
    A known cost plus an unknown one is unknown (None)."""
    if not more:
        return total
    out: dict[str, Any] = dict.fromkeys(TOKEN_KEYS, 0) if total is None else dict(total)
    for key in TOKEN_KEYS:
        out[key] = int(out.get(key) or 0) + int(more.get(key) or 0)
    if total is None:
        out["cost_usd"] = more.get("cost_usd")
    elif out.get("cost_usd") is not None and more.get("cost_usd") is not None:
        out["cost_usd"] = round(float(out["cost_usd"]) + float(more["cost_usd"]), 6)
    else:
        out["cost_usd"] = None
    calls = list(out.get(TOOL_CALLS) or []) + list(more.get(TOOL_CALLS) or [])
    if calls:  # the failed attempts' tool calls: their transcript, the latest kept
        out[TOOL_CALLS] = calls[-MAX_TOOL_CALLS:]
    return out


def step_spent(
    usage: Mapping[str, Any] | None, detail: Mapping[str, Any] | None
) -> list[Mapping[str, Any]]:
    """The usage records that make up what a step has spent: its committed attempt, its
    earlier failed attempts, and (while it has no checkpoint) its failed attempts."""
    parts: list[Mapping[str, Any]] = []
    if usage:
        parts.append(usage)
        if isinstance(usage.get(EARLIER), Mapping):
            parts.append(usage[EARLIER])
    elif detail and isinstance(detail.get("usage"), Mapping):
        parts.append(detail["usage"])
    return parts


def cache_share(tokens: Mapping[str, Any]) -> float | None:
    """The share of input tokens served from the prompt cache (None without input)."""
    read = int(tokens.get("cache_read_input_tokens") or 0)
    total = (
        int(tokens.get("input_tokens") or 0)
        + int(tokens.get("cache_creation_input_tokens") or 0)
        + read
    )
    return round(read / total, 4) if total else None
