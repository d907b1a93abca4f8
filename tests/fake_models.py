"""The fake Messages API's own knowledge of the models: what `GET /v1/models` reports and
what `POST /v1/messages` accepts. Written by hand from ../shared/API-NOTES.md, apart from
tutti's table (engine/model_table.py), so that a test comparing the two can fail.

Where the notes say nothing (haiku-5-5, sonnet-5, opus-5, fable, mythos), the fake plays
the strict model: adaptive thinking only. Tests may change `FakeAnthropic.models` to play
another API answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

THINKING_TYPES = ("adaptive", "between_tools", "disabled", "enabled")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
OFF = ("disabled", "between_tools")  # thinking turned off: efforts low, medium, high only
BUDGET_MIN = 1024


@dataclass
class FakeModel:
    thinking: frozenset[str]
    efforts: frozenset[str] = field(default_factory=frozenset)
    max_tokens: int = 64_000
    max_input_tokens: int = 200_000
    structured_outputs: bool = True

    def info(self, model_id: str) -> dict[str, Any]:
        """The model as the Models API describes it (the SDK's ModelInfo shape)."""

        def yes(flag: bool) -> dict[str, bool]:
            return {"supported": flag}

        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id.replace("-", " ").title(),
            "created_at": "2026-01-01T00:00:00Z",
            "lifecycle": "active",
            "max_tokens": self.max_tokens,
            "max_input_tokens": self.max_input_tokens,
            "capabilities": {
                "batch": yes(True),
                "citations": yes(True),
                "code_execution": yes(False),
                "context_management": yes(False),
                "effort": {
                    "supported": bool(self.efforts),
                    **{e: yes(e in self.efforts) for e in EFFORTS},
                },
                "image_input": yes(True),
                "pdf_input": yes(True),
                "server_tools": {
                    "supported": False,
                    "code_execution": yes(False),
                    "web_search": yes(False),
                },
                "structured_outputs": yes(self.structured_outputs),
                "thinking": {
                    "supported": bool(self.thinking - {"disabled"}),
                    "types": {t: yes(t in self.thinking) for t in THINKING_TYPES},
                },
            },
        }


def _fm(thinking: str, efforts: str = "", max_tokens: int = 64_000) -> FakeModel:
    return FakeModel(frozenset(thinking.split()), frozenset(efforts.split()), max_tokens)


_ALL = "low medium high xhigh max"
_LMH = "low medium high"
_HAIKU_45 = _fm("enabled disabled")
_SONNET_45 = _fm("enabled disabled")
_OPUS_45 = _fm("enabled disabled", _LMH)

MODELS: dict[str, FakeModel] = {
    "claude-fable-5-2": _fm("adaptive", _ALL),
    "claude-mythos-5-2": _fm("adaptive", _ALL),
    "claude-haiku-5-5": _fm("adaptive", _LMH),
    "claude-sonnet-5-5": _fm("adaptive between_tools", _ALL),
    "claude-fable-5-1": _fm("adaptive", _ALL, 128_000),
    "claude-opus-5-5": _fm("adaptive", _ALL, 128_000),
    "claude-mythos-5-1": _fm("adaptive", _ALL),
    "claude-sonnet-5": _fm("adaptive", _LMH),
    "claude-fable-5": _fm("adaptive", _ALL),
    "claude-mythos-5": _fm("adaptive", _ALL),
    "claude-opus-5": _fm("adaptive", _LMH, 128_000),
    "claude-opus-4-8": _fm("adaptive disabled", _ALL, 128_000),
    "claude-opus-4-7": _fm("adaptive disabled", _ALL, 128_000),
    "claude-mythos-preview": _fm("adaptive", _LMH),
    "claude-opus-4-6": _fm("adaptive enabled disabled", "low medium high max", 128_000),
    "claude-sonnet-4-6": _fm("adaptive enabled disabled", _LMH),
    "claude-haiku-4-5": _HAIKU_45,
    "claude-haiku-4-5-20251001": _HAIKU_45,
    "claude-opus-4-5": _OPUS_45,
    "claude-opus-4-5-20251101": _OPUS_45,
    "claude-sonnet-4-5": _SONNET_45,
    "claude-sonnet-4-5-20250929": _SONNET_45,
    "claude-opus-4-1": _fm("enabled disabled", max_tokens=32_000),
    "claude-opus-4-1-20250805": _fm("enabled disabled", max_tokens=32_000),
    "claude-sonnet-4-20250514": _fm("enabled disabled"),
    "claude-3-7-sonnet-20250219": _fm("enabled disabled"),
}


def _not_supported(what: str, hint: str = "") -> tuple[int, str, str]:
    return 400, "invalid_request_error", f"{what} is not supported for this model.{hint}"


def check_request(models: dict[str, FakeModel], body: Any) -> tuple[int, str, str] | None:
    """What the real API would answer instead of a message, as (status, error type,
    message); None when it accepts the request."""
    if not isinstance(body, dict):
        return 400, "invalid_request_error", "the request body is not a JSON object"
    model_id = body.get("model")
    model = models.get(model_id) if isinstance(model_id, str) else None
    if model is None:
        return 404, "not_found_error", f"model: {model_id}"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return 400, "invalid_request_error", "max_tokens: Field required (an integer >= 1)"
    if max_tokens > model.max_tokens:
        return (
            400,
            "invalid_request_error",
            f"max_tokens: {max_tokens} > {model.max_tokens}, which is the maximum allowed "
            f"number of output tokens for {model_id}",
        )
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if thinking is not None:
        if kind not in THINKING_TYPES:
            expected = ", ".join(f"'{t}'" for t in THINKING_TYPES)
            return (
                400,
                "invalid_request_error",
                f"thinking: Input tag {kind!r} found using 'type' does not match any of the "
                f"expected tags: {expected}",
            )
        if kind not in model.thinking:
            hint = (
                ' Use "thinking.type.adaptive" and "output_config.effort" to control thinking '
                "behavior."
                if "adaptive" in model.thinking
                else ""
            )
            return _not_supported(f'"thinking.type.{kind}"', hint)
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < BUDGET_MIN:
                return (
                    400,
                    "invalid_request_error",
                    f"thinking.enabled.budget_tokens: Input should be greater than or equal "
                    f"to {BUDGET_MIN}",
                )
            if budget >= max_tokens:
                return (
                    400,
                    "invalid_request_error",
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
                    "our documentation at https://docs.claude.com/en/docs/build-with-claude/"
                    "extended-thinking#max-tokens-and-context-window-size",
                )
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort is not None:
        if not model.efforts:
            return _not_supported('"output_config.effort"')
        if effort not in model.efforts:
            return _not_supported(f'"output_config.effort": "{effort}"')
        if kind in OFF and effort not in ("low", "medium", "high"):
            return (
                400,
                "invalid_request_error",
                f'"output_config.effort": "{effort}" requires "thinking.type.adaptive"; with '
                f'"thinking.type.{kind}" use low, medium or high.',
            )
    return None


def list_page(models: dict[str, FakeModel], query: dict[str, list[str]]) -> dict[str, Any]:
    """`GET /v1/models`: newest first in the fake's order, with limit / after_id /
    before_id cursors."""
    ids = list(models)
    limit = int((query.get("limit") or ["20"])[0])
    if "after_id" in query and query["after_id"][0] in ids:
        ids = ids[ids.index(query["after_id"][0]) + 1 :]
    if "before_id" in query and query["before_id"][0] in ids:
        ids = ids[: ids.index(query["before_id"][0])]
        page = ids[-limit:]
        has_more = len(ids) > limit
    else:
        page = ids[:limit]
        has_more = len(ids) > limit
    return {
        "data": [models[i].info(i) for i in page],
        "has_more": has_more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
