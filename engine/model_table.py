"""The shipped model table: the offline fallback for what the Models API reports, and the
prices (the API reports none). It covers every id in the installed SDK's `Model` literal
(tests/engine/test_models.py checks that) plus older ids users still name.

Sources: ../shared/API-NOTES.md (thinking types, effort, prices, late 2026). Where the
notes say nothing about a model (marked `unverified`), the entry is conservative: thinking
only `adaptive` (every 5.x model accepts it; instant then means the lowest effort), effort
low/medium/high, a 64k output limit and no price. With an API key, the Models API
overrides every capability here at run time (engine/model_catalog.py); TUTTI_MODELS
overrides both.
"""

from __future__ import annotations

from tutti_mcp.engine.model_info import Effort, ModelInfo, Prices, ThinkingType

ADAPTIVE, ENABLED = ThinkingType.ADAPTIVE, ThinkingType.ENABLED
DISABLED, BETWEEN = ThinkingType.DISABLED, ThinkingType.BETWEEN_TOOLS
LMH = frozenset({Effort.LOW, Effort.MEDIUM, Effort.HIGH})
ALL_EFFORTS = frozenset(Effort)

# thinking-type sets by generation
BUDGET_ONLY = frozenset({ENABLED, DISABLED})  # 3.7 to the 4.5 models
BOTH = frozenset({ADAPTIVE, ENABLED, DISABLED})  # 4.6: budget deprecated, tutti sends adaptive
ADAPTIVE_OR_OFF = frozenset({ADAPTIVE, DISABLED})  # Opus 4.7, 4.8: budget rejected
ADAPTIVE_OR_BETWEEN = frozenset({ADAPTIVE, BETWEEN})  # Sonnet 5.5: rejects `disabled`
ALWAYS_ON = frozenset({ADAPTIVE})  # Opus 5.5, Fable, Mythos: lower effort instead of off


def _m(
    id: str,
    types: frozenset[ThinkingType],
    price: tuple[float, float] | None,
    *,
    efforts: frozenset[Effort] = LMH,
    max_tokens: int = 64_000,
    max_input_tokens: int = 200_000,
    structured_outputs: bool = True,
    min_cache_tokens: int = 1024,
) -> ModelInfo:
    return ModelInfo(
        id,
        types,
        efforts,
        max_tokens=max_tokens,
        max_input_tokens=max_input_tokens,
        structured_outputs=structured_outputs,
        min_cache_tokens=min_cache_tokens,
        prices=None if price is None else Prices.of(*price),
    )


SHIPPED: dict[str, ModelInfo] = {
    m.id: m
    for m in [
        # 5.x: adaptive thinking only (no budget_tokens)
        _m("claude-fable-5-2", ALWAYS_ON, None, efforts=ALL_EFFORTS),  # unverified, no price
        _m("claude-mythos-5-2", ALWAYS_ON, None, efforts=ALL_EFFORTS),  # unverified, no price
        _m("claude-haiku-5-5", ALWAYS_ON, None),  # unverified, no price
        _m(
            "claude-sonnet-5-5",
            ADAPTIVE_OR_BETWEEN,
            (2, 10),  # cache 2.50 / 4 / 0.20: the default multipliers
            efforts=ALL_EFFORTS,
        ),
        _m("claude-fable-5-1", ALWAYS_ON, (10, 50), efforts=ALL_EFFORTS, max_tokens=128_000),
        _m("claude-opus-5-5", ALWAYS_ON, (4, 20), efforts=ALL_EFFORTS, max_tokens=128_000),
        _m("claude-mythos-5-1", ALWAYS_ON, None, efforts=ALL_EFFORTS),  # unverified, no price
        _m("claude-sonnet-5", ALWAYS_ON, (2, 10)),  # thinking types unverified
        _m("claude-fable-5", ALWAYS_ON, (10, 50), efforts=ALL_EFFORTS),  # unverified types
        _m("claude-mythos-5", ALWAYS_ON, (10, 50), efforts=ALL_EFFORTS),  # unverified types
        _m("claude-opus-5", ALWAYS_ON, (5, 25), max_tokens=128_000),  # unverified types
        _m("claude-mythos-preview", ALWAYS_ON, None),  # unverified, no price
        # 4.7, 4.8: adaptive or off
        _m("claude-opus-4-8", ADAPTIVE_OR_OFF, (5, 25), efforts=ALL_EFFORTS, max_tokens=128_000),
        _m("claude-opus-4-7", ADAPTIVE_OR_OFF, (5, 25), efforts=ALL_EFFORTS, max_tokens=128_000),
        # 4.6: adaptive, budget (deprecated) or off
        _m("claude-opus-4-6", BOTH, (5, 25), efforts=LMH | {Effort.MAX}, max_tokens=128_000),
        _m("claude-sonnet-4-6", BOTH, (3, 15)),
        # 4.5 and older: budget_tokens or off
        _m("claude-opus-4-5", BUDGET_ONLY, (5, 25), min_cache_tokens=4096),
        _m("claude-sonnet-4-5", BUDGET_ONLY, (3, 15), efforts=frozenset()),
        _m("claude-haiku-4-5", BUDGET_ONLY, (1, 5), efforts=frozenset(), min_cache_tokens=4096),
        # older ids, not in the SDK's literal; prices not in the notes: none
        _m("claude-opus-4-1", BUDGET_ONLY, None, efforts=frozenset(), max_tokens=32_000),
        _m("claude-opus-4-0", BUDGET_ONLY, None, efforts=frozenset(), max_tokens=32_000),
        _m("claude-opus-4", BUDGET_ONLY, None, efforts=frozenset(), max_tokens=32_000),
        _m("claude-sonnet-4-0", BUDGET_ONLY, None, efforts=frozenset()),
        _m("claude-sonnet-4", BUDGET_ONLY, None, efforts=frozenset()),
        _m("claude-3-7-sonnet", BUDGET_ONLY, None, efforts=frozenset(), structured_outputs=False),
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
