"""The one table of Claude models: aliases, thinking capabilities, prices.

Settings can override any entry (TUTTI_MODELS, a JSON file). Unknown model ids
fall back to the family of the nearest known id, else to an adaptive-thinking
model without a price (cost then reads as unknown rather than a made-up number).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.errors import ConfigurationError


class ThinkingStyle(StrEnum):
    BUDGET = "budget"  # thinking: {type: enabled, budget_tokens}
    ADAPTIVE = "adaptive"  # thinking: {type: adaptive} + output_config.effort
    BOTH = "both"  # takes either; budget deprecated, so tutti sends adaptive


@dataclass(frozen=True)
class ModelInfo:
    id: str
    thinking: ThinkingStyle
    can_disable_thinking: bool = True
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None
    max_output_tokens: int = 64_000
    structured_outputs: bool = True  # takes output_config.format (a JSON Schema)
    min_cache_tokens: int = 1024  # shortest prompt prefix the API caches

    @property
    def adaptive(self) -> bool:
        return self.thinking is not ThinkingStyle.BUDGET

    def cost_usd(self, usage: dict[str, int]) -> float | None:
        """Price of one call's usage; cache reads at 1/10 of input, cache writes at 1.25x."""
        if self.input_usd_per_mtok is None or self.output_usd_per_mtok is None:
            return None
        inp = self.input_usd_per_mtok / 1e6
        total = (
            usage.get("input_tokens", 0) * inp
            + usage.get("cache_creation_input_tokens", 0) * inp * 1.25
            + usage.get("cache_read_input_tokens", 0) * inp * 0.1
            + usage.get("output_tokens", 0) * self.output_usd_per_mtok / 1e6
        )
        return round(total, 6)


def _m(id: str, style: ThinkingStyle, price: tuple[float, float], **kw: Any) -> ModelInfo:
    return ModelInfo(id, style, input_usd_per_mtok=price[0], output_usd_per_mtok=price[1], **kw)


A, B, BOTH = ThinkingStyle.ADAPTIVE, ThinkingStyle.BUDGET, ThinkingStyle.BOTH
MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in [
        _m("claude-opus-5-5", A, (4, 20), max_output_tokens=128_000),
        _m("claude-sonnet-5-5", A, (2, 10)),
        _m("claude-sonnet-5", A, (2, 10)),
        _m("claude-opus-5", A, (5, 25), max_output_tokens=128_000),
        _m("claude-opus-4-8", A, (5, 25), max_output_tokens=128_000),
        _m("claude-opus-4-7", A, (5, 25), max_output_tokens=128_000),
        _m("claude-opus-4-6", BOTH, (5, 25), max_output_tokens=128_000),
        _m("claude-sonnet-4-6", BOTH, (3, 15)),
        _m("claude-opus-4-5", B, (5, 25)),
        _m("claude-sonnet-4-5", B, (3, 15)),
        _m("claude-haiku-4-5", B, (1, 5)),
    ]
}

ALIASES: dict[str, str] = {
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-4-5",
    # the seed document's names for the Claude 4 family
    "claude-4-opus": "claude-opus-4-8",
    "claude-4-sonnet": "claude-sonnet-4-6",
    "claude-4-haiku": "claude-haiku-4-5",
}

DEFAULT_MODEL = "sonnet"


class ModelTable:
    """Aliases and model facts, with user overrides applied on top of the built-in table."""

    def __init__(
        self,
        models: dict[str, ModelInfo] | None = None,
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.models = dict(MODELS if models is None else models)
        self.aliases = dict(ALIASES if aliases is None else aliases)

    def resolve(self, name: str | None) -> ModelInfo:
        """Alias or id to the model's facts. Dated ids (`claude-haiku-4-5-20251001`) match
        their family."""
        model_id = self.aliases.get(name or DEFAULT_MODEL, name or DEFAULT_MODEL)
        if model_id in self.models:
            return self.models[model_id]
        family = max((k for k in self.models if model_id.startswith(k)), key=len, default=None)
        if family is not None:
            return replace(self.models[family], id=model_id)
        return ModelInfo(model_id, ThinkingStyle.ADAPTIVE)

    def with_overrides(self, data: dict[str, Any]) -> ModelTable:
        """Apply `{"aliases": {...}, "models": {id: {field: value}}}` (the TUTTI_MODELS file)."""
        table = ModelTable(self.models, self.aliases)
        table.aliases.update(data.get("aliases", {}))
        for model_id, fields in data.get("models", {}).items():
            base = table.models.get(model_id, ModelInfo(model_id, ThinkingStyle.ADAPTIVE))
            try:
                if "thinking" in fields:
                    fields = {**fields, "thinking": ThinkingStyle(fields["thinking"])}
                table.models[model_id] = replace(base, **fields)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"model override for {model_id!r}: {exc}") from None
        return table

    @classmethod
    def from_file(cls, path: str | Path | None) -> ModelTable:
        table = cls()
        if not path:
            return table
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"cannot read model overrides from {path}: {exc}") from None
        return table.with_overrides(data)
