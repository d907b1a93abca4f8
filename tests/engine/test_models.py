"""The model table: every id the installed SDK knows and every alias, published prices
with cache writes and reads, costs, and TUTTI_MODELS overrides (old and new format)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.model_table import ALIASES
from tutti_mcp.engine.models import Effort, ModelInfo, ModelTable, Prices, Source, ThinkingType
from tutti_mcp.engine.spec import ThinkingMode
from tutti_mcp.engine.thinking import api_params

pytestmark = pytest.mark.anyio

T = ThinkingType
MODES = ("instant", "standard", "extended")


def sdk_model_ids() -> list[str]:
    """Every literal id of the installed SDK's `Model` (a Union of a Literal and str)."""
    ids: list[str] = []
    for arg in typing.get_args(anthropic.types.Model):
        if typing.get_origin(arg) is typing.Literal:
            ids.extend(typing.get_args(arg))
    return ids


# -- the shipped table -------------------------------------------------------------------------
def test_the_sdk_lists_model_ids_and_the_table_covers_each_of_them_and_every_alias() -> None:
    ids = sdk_model_ids()
    assert len(ids) >= 20 and "claude-sonnet-5-5" in ids
    table = ModelTable()
    guessed = [i for i in [*ids, *ALIASES.values()] if table.resolve(i).source is not Source.TABLE]
    assert guessed == []


@pytest.mark.parametrize(
    ("name", "prices"),
    [
        ("claude-fable-5-1", (10, 50, 12.5, 20, 1)),
        ("claude-fable-5", (10, 50, 12.5, 20, 1)),
        ("claude-mythos-5", (10, 50, 12.5, 20, 1)),
        ("opus", (4, 20, 5, 8, 0.4)),
        ("sonnet", (2, 10, 2.5, 4, 0.2)),
        ("claude-sonnet-5", (2, 10, 2.5, 4, 0.2)),
        ("claude-opus-5", (5, 25, 6.25, 10, 0.5)),
        ("claude-opus-4-8", (5, 25, 6.25, 10, 0.5)),
        ("claude-opus-4-5-20251101", (5, 25, 6.25, 10, 0.5)),
        ("claude-sonnet-4-6", (3, 15, 3.75, 6, 0.3)),
        ("claude-sonnet-4-5-20250929", (3, 15, 3.75, 6, 0.3)),
        ("haiku", (1, 5, 1.25, 2, 0.1)),
    ],
)
def test_published_prices_carry_cache_writes_and_reads(
    name: str, prices: tuple[float, ...]
) -> None:
    assert ModelTable().resolve(name).prices == Prices(*map(float, prices))


@pytest.mark.parametrize(
    "name",
    ["claude-haiku-5-5", "claude-fable-5-2", "claude-mythos-5-2", "claude-mythos-preview"],
)
def test_a_model_without_a_published_price_has_none_rather_than_a_guess(name: str) -> None:
    model = ModelTable().resolve(name)
    assert (model.prices, model.cost_usd({"input_tokens": 10})) == (None, None)


def test_cost_counts_input_output_both_cache_writes_and_reads_at_their_own_prices() -> None:
    sonnet = ModelTable().resolve("sonnet")  # 2 / 10, cache 2.50 (5m) / 4 (1h) / 0.20
    m = 1_000_000
    usage = {
        "input_tokens": m,
        "output_tokens": m,
        "cache_read_input_tokens": m,
        "cache_creation_input_tokens": 3 * m,
        "cache_creation": {"ephemeral_5m_input_tokens": m, "ephemeral_1h_input_tokens": 2 * m},
    }
    assert sonnet.cost_usd(usage) == 2 + 10 + 0.2 + 2.5 + 2 * 4
    # the breakdown as top-level keys (a flattened usage record) counts the same
    flat = {**usage, "ephemeral_5m_input_tokens": m, "ephemeral_1h_input_tokens": 2 * m}
    del flat["cache_creation"]
    assert sonnet.cost_usd(flat) == sonnet.cost_usd(usage)
    # writes without a breakdown are 5-minute writes, the default lifetime
    assert sonnet.cost_usd({"cache_creation_input_tokens": m}) == 2.5


@pytest.mark.parametrize(
    ("name", "model_id", "source"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001", Source.TABLE),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet-latest", Source.TABLE),
        ("claude-4-opus", "claude-opus-4-8", Source.TABLE),
        (None, "claude-sonnet-5-5", Source.TABLE),
        # a dated id only takes its family's facts with a date: 4-7 is not a date of 4
        ("claude-sonnet-4-7", "claude-sonnet-4-7", Source.GUESS),
        ("some-future-model", "some-future-model", Source.GUESS),
    ],
)
def test_aliases_and_dated_ids_resolve_to_their_family_and_unknown_ids_are_guessed(
    name: str | None, model_id: str, source: Source
) -> None:
    model = ModelTable().resolve(name)
    assert (model.id, model.source) == (model_id, source)


def test_an_unknown_model_is_adaptive_only_and_has_no_price() -> None:
    assert ModelTable().resolve("some-future-model") == ModelInfo(
        "some-future-model", frozenset({T.ADAPTIVE}), source=Source.GUESS
    )


# -- TUTTI_MODELS overrides -------------------------------------------------------------------
def test_legacy_overrides_keep_working() -> None:
    base = ModelTable()
    table = base.with_overrides(
        {
            "aliases": {"opus": "claude-opus-4-7", "fast": "claude-haiku-4-5"},
            "models": {
                "claude-haiku-4-5": {"max_output_tokens": 8000, "input_usd_per_mtok": 0.8},
                "my-model": {
                    "thinking": "budget",
                    "can_disable_thinking": False,
                    "input_usd_per_mtok": 1,
                    "output_usd_per_mtok": 2,
                },
            },
        }
    )
    assert [table.resolve("opus").id, table.resolve("fast").id] == [
        "claude-opus-4-7",
        "claude-haiku-4-5",
    ]
    haiku = table.resolve("haiku")
    assert (haiku.max_tokens, haiku.prices, haiku.source) == (
        8000,
        Prices.of(0.8, 5),
        Source.OVERRIDE,
    )
    mine = table.resolve("my-model")
    assert (mine.thinking_types, mine.prices) == (
        frozenset({T.ENABLED}),
        Prices(1, 2, 1.25, 2, 0.1),
    )
    assert [base.resolve("opus").id, base.resolve("haiku").max_tokens] == [
        "claude-opus-5-5",
        64_000,
    ]


def test_overrides_set_capabilities_and_full_prices_and_apply_to_dated_ids() -> None:
    table = ModelTable().with_overrides(
        {
            "models": {
                "claude-haiku-4-5": {
                    "thinking_types": ["adaptive", "disabled"],
                    "efforts": ["low", "high"],
                    "prices": {"cache_read": 0.05},
                },
                "claude-haiku-5-5": {"prices": {"input": 1, "output": 5, "cache_write_1h": 1.5}},
            }
        }
    )
    dated = table.resolve("claude-haiku-4-5-20251001")
    assert (dated.thinking_types, dated.efforts, dated.prices) == (
        frozenset({T.ADAPTIVE, T.DISABLED}),
        frozenset({Effort.LOW, Effort.HIGH}),
        Prices(1, 5, 1.25, 2, 0.05),
    )
    assert api_params(ThinkingMode.STANDARD, dated, None)["output_config"] == {"effort": "high"}
    assert table.resolve("claude-haiku-5-5").prices == Prices(1, 5, 1.25, 1.5, 0.1)


def test_overrides_win_over_what_the_models_api_said() -> None:
    table = ModelTable().with_overrides({"models": {"claude-opus-4-7": {"max_tokens": 1000}}})
    table.learn(ModelInfo("claude-opus-4-7", frozenset({T.ADAPTIVE}), source=Source.API))
    model = table.resolve("claude-opus-4-7")
    assert (model.thinking_types, model.max_tokens, model.prices, model.source) == (
        frozenset({T.ADAPTIVE}),  # the API's
        1000,  # the override's
        Prices.of(5, 25),  # the table's: the API reports no prices
        Source.OVERRIDE,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"thinking": "weird"},
            "model override for 'x': `thinking` takes budget, adaptive or both (or use "
            "`thinking_types`); got 'weird'",
        ),
        (
            {"thinking_types": ["sometimes"]},
            "model override for 'x': `thinking_types` takes adaptive, enabled, disabled, "
            "between_tools; got ['sometimes']",
        ),
        (
            {"nope": 1},
            "model override for 'x': unknown field 'nope' (known: max_tokens, max_input_tokens, "
            "thinking_types, efforts, structured_outputs, prices, thinking, "
            "can_disable_thinking, max_output_tokens, input_usd_per_mtok, output_usd_per_mtok)",
        ),
        ({"max_tokens": "big"}, "model override for 'x': `max_tokens` must be a positive integer"),
        (
            {"input_usd_per_mtok": 1},
            "model override for 'x': prices need both `input` and `output` (USD per million "
            "tokens); this model has no price to complete them from",
        ),
        (
            {"prices": {"input": -1, "output": 1}},
            "model override for 'x': price `input` must be a number >= 0 (USD per million tokens)",
        ),
    ],
)
def test_bad_overrides_are_configuration_errors_naming_the_field(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        ModelTable().with_overrides({"models": {"x": fields}})
    assert str(info.value) == message


def test_the_overrides_file_is_read_and_its_errors_name_it(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text('{"models": {"claude-haiku-4-5": {"max_tokens": 9000}}}', encoding="utf-8")
    assert ModelTable.from_file(path).resolve("haiku").max_tokens == 9000
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"models.json \(TUTTI_MODELS\) must be an object"):
        ModelTable.from_file(path)
