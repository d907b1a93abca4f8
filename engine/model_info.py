"""What tutti knows about one model: the capabilities the Models API reports (output limit,
context window, thinking types, effort levels, structured outputs), its prices, and where
those facts came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ThinkingType(StrEnum):
    """The `thinking.type` values of the Messages API (ModelInfo.capabilities.thinking.types)."""

    ADAPTIVE = "adaptive"  # the model decides; paired with output_config.effort
    ENABLED = "enabled"  # extended thinking with a caller-set budget_tokens
    DISABLED = "disabled"  # thinking off
    BETWEEN_TOOLS = "between_tools"  # off up front; short notes between tool calls


class Effort(StrEnum):
    """`output_config.effort` levels, lowest first (the order is used to pick the lowest)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"
    MAX = "max"


EFFORT_ORDER: tuple[Effort, ...] = tuple(Effort)


class Source(StrEnum):
    """Where a model's capabilities came from."""

    API = "api"  # the Models API, in this process
    CACHE = "cache"  # the Models API, earlier, from the database
    TABLE = "table"  # the shipped table (engine/model_table.py)
    OVERRIDE = "override"  # TUTTI_MODELS
    GUESS = "guess"  # an id nobody knows: adaptive thinking only, no price


# Cache prices relative to the input price, where the published list gives none.
CACHE_WRITE_5M = 1.25
CACHE_WRITE_1H = 2.0
CACHE_READ = 0.1


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    @classmethod
    def of(
        cls,
        input: float,
        output: float,
        *,
        cache_write_5m: float | None = None,
        cache_write_1h: float | None = None,
        cache_read: float | None = None,
    ) -> Prices:
        """Input and output prices; cache prices default to 1.25x / 2x / 0.1x input."""

        def derived(given: float | None, factor: float) -> float:
            # rounded: 3 * 0.1 is a price of 0.3, not 0.30000000000000004
            return float(round(input * factor, 6) if given is None else given)

        return cls(
            float(input),
            float(output),
            derived(cache_write_5m, CACHE_WRITE_5M),
            derived(cache_write_1h, CACHE_WRITE_1H),
            derived(cache_read, CACHE_READ),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_write_5m": self.cache_write_5m,
            "cache_write_1h": self.cache_write_1h,
            "cache_read": self.cache_read,
        }


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    return int(usage.get(key) or 0)


def cache_writes(usage: Mapping[str, Any]) -> tuple[int, int]:
    """(5-minute, 1-hour) cache-write tokens. The SDK's `cache_creation` breakdown (nested,
    or its two keys at the top level) says which; writes it does not cover are 5-minute
    writes, the default lifetime."""
    nested = usage.get("cache_creation")
    breakdown: Mapping[str, Any] = nested if isinstance(nested, Mapping) else usage
    w5 = _tokens(breakdown, "ephemeral_5m_input_tokens")
    w1 = _tokens(breakdown, "ephemeral_1h_input_tokens")
    rest = _tokens(usage, "cache_creation_input_tokens") - w5 - w1
    return w5 + max(0, rest), w1


@dataclass(frozen=True)
class ModelInfo:
    id: str
    thinking_types: frozenset[ThinkingType]
    efforts: frozenset[Effort] = frozenset()
    max_tokens: int = 64_000  # the largest max_tokens the model accepts
    max_input_tokens: int | None = None
    structured_outputs: bool = False
    min_cache_tokens: int = 1024  # the shortest prompt prefix the API caches
    prices: Prices | None = None
    source: Source = Source.TABLE

    def accepts(self, kind: ThinkingType) -> bool:
        return kind in self.thinking_types

    def lowest_effort(self, allowed: tuple[Effort, ...] = EFFORT_ORDER) -> Effort | None:
        return next((e for e in allowed if e in self.efforts), None)

    def cost_usd(self, usage: Mapping[str, Any]) -> float | None:
        """The price of a call's usage: input, output, 5-minute and 1-hour cache writes and
        cache reads, each at its own price. None when the model has no known price."""
        p = self.prices
        if p is None:
            return None
        w5, w1 = cache_writes(usage)
        total = (
            _tokens(usage, "input_tokens") * p.input
            + _tokens(usage, "output_tokens") * p.output
            + w5 * p.cache_write_5m
            + w1 * p.cache_write_1h
            + _tokens(usage, "cache_read_input_tokens") * p.cache_read
        )
        return round(total / 1e6, 6)

    def describe(self) -> dict[str, Any]:
        """The record as plain JSON (for `tutti models --json`)."""
        return {
            "id": self.id,
            "source": self.source.value,
            "max_tokens": self.max_tokens,
            "max_input_tokens": self.max_input_tokens,
            "thinking_types": [t.value for t in ThinkingType if t in self.thinking_types],
            "efforts": [e.value for e in EFFORT_ORDER if e in self.efforts],
            "structured_outputs": self.structured_outputs,
            "prices_usd_per_mtok": None if self.prices is None else self.prices.as_dict(),
        }
