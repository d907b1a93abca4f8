"""Thinking modes: the complexity score behind `auto`, the API parameters per model style,
and the model table (aliases, dated ids, overrides)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import ConfigurationError
from engine.models import ModelInfo, ModelTable, ThinkingStyle
from engine.spec import ThinkingMode, parse_spec
from engine.thinking import ThinkingChoice, api_params, choose

INSTANT, STANDARD, EXTENDED = ThinkingMode.INSTANT, ThinkingMode.STANDARD, ThinkingMode.EXTENDED


def choice(step: dict[str, Any], n_inputs: int = 0, **spec: Any) -> ThinkingChoice:
    parsed = parse_spec({"steps": [step], **spec})
    return choose(parsed.steps[0], parsed, n_inputs)


# -- choosing a mode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "n_inputs", "mode", "reason"),
    [
        (
            {"id": "s", "prompt": "list the files"},
            0,
            INSTANT,
            "auto: score 0.5/10 -> instant (base 2; keywords list -1.5)",
        ),
        ({"id": "s", "prompt": "hello"}, 0, INSTANT, "auto: score 2.0/10 -> instant (base 2)"),
        (
            {"id": "s", "prompt": "hello"},
            2,
            STANDARD,
            "auto: score 3.0/10 -> standard (base 2; 2 upstream inputs +1.0)",
        ),
        (
            {"id": "s", "command": "/query", "args": "analyze Python security vulnerabilities"},
            0,
            STANDARD,
            "auto: score 6.0/10 -> standard "
            "(base 2; /query +1.0; keywords analyze, security, vulnerabilities +3.0)",
        ),
        (
            {"id": "s", "prompt": " ".join(["word"] * 300)},
            3,
            STANDARD,
            "auto: score 5.5/10 -> standard (base 2; 300 words +2.0; 3 upstream inputs +1.5)",
        ),
        (
            {"id": "s", "command": "/task", "args": "debug the deadlock; find the root cause"},
            0,
            EXTENDED,
            "auto: score 7.0/10 -> extended (base 2; /task +2.0; keywords debug, root cause +3.0)",
        ),
        (
            {
                "id": "s",
                "command": "/task",
                "args": "refactor the architecture for security",
                "difficulty": "high",
            },
            0,
            EXTENDED,
            "auto: score 10.0/10 -> extended (base 2; /task +2.0; keywords architecture, "
            "refactor, security +3.0; difficulty high +4.0)",
        ),
        (
            {"id": "s", "prompt": "summarize this", "difficulty": "low"},
            0,
            INSTANT,
            "auto: score 0.0/10 -> instant (base 2; keywords summarize -1.5; difficulty low -2.0)",
        ),
    ],
)
def test_auto_scores_complexity_and_picks_a_mode_with_its_reasons(
    step: dict[str, Any], n_inputs: int, mode: ThinkingMode, reason: str
) -> None:
    got = choice(step, n_inputs)
    assert (got.mode, got.requested, got.reason) == (mode, ThinkingMode.AUTO, reason)


def test_hard_keywords_cancel_the_easy_keyword_discount() -> None:
    assert choice({"id": "s", "prompt": "list and review the threat model"}).reason == (
        "auto: score 5.0/10 -> standard (base 2; keywords review, threat +3.0)"
    )


def test_a_step_mode_wins_over_the_default_and_is_reported_as_set() -> None:
    got = choice(
        {"id": "s", "prompt": "hi", "thinking": "extended"}, defaults={"thinking": "instant"}
    )
    assert (got.mode, got.score, got.reason) == (EXTENDED, None, "set to extended")


def test_the_workflow_default_mode_applies_to_steps_without_one() -> None:
    got = choice({"id": "s", "prompt": "hi"}, defaults={"thinking": "instant"})
    assert (got.mode, got.reason) == (INSTANT, "set to instant")


def test_without_adaptive_thinking_unset_steps_use_standard() -> None:
    got = choice({"id": "s", "prompt": "analyze"}, optimization={"adaptive_thinking": False})
    assert (got.mode, got.reason) == (STANDARD, "set to standard")


# -- API parameters ----------------------------------------------------------------------

HAIKU = ModelTable().resolve("claude-haiku-4-5")
OPUS_47 = ModelTable().resolve("claude-opus-4-7")


@pytest.mark.parametrize(
    ("mode", "params"),
    [
        (INSTANT, {"max_tokens": 4096, "thinking": {"type": "disabled"}}),
        (STANDARD, {"max_tokens": 12000, "thinking": {"type": "enabled", "budget_tokens": 4096}}),
        (EXTENDED, {"max_tokens": 32000, "thinking": {"type": "enabled", "budget_tokens": 16000}}),
    ],
)
def test_budget_model_haiku_gets_enabled_thinking_with_a_budget(
    mode: ThinkingMode, params: dict[str, Any]
) -> None:
    assert api_params(mode, HAIKU, None) == params


@pytest.mark.parametrize(
    ("mode", "params"),
    [
        (INSTANT, {"max_tokens": 4096, "thinking": {"type": "disabled"}}),
        (
            STANDARD,
            {
                "max_tokens": 16000,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "medium"},
            },
        ),
        (
            EXTENDED,
            {
                "max_tokens": 32000,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "high"},
            },
        ),
    ],
)
def test_adaptive_model_opus_4_7_gets_adaptive_thinking_with_an_effort(
    mode: ThinkingMode, params: dict[str, Any]
) -> None:
    assert api_params(mode, OPUS_47, None) == params


@pytest.mark.parametrize(
    ("mode", "max_tokens", "params"),
    [
        (
            STANDARD,
            2000,
            {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        ),
        (
            EXTENDED,
            2000,
            {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        ),
        (
            STANDARD,
            5000,
            {"max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 4096}},
        ),
        (
            EXTENDED,
            5000,
            {"max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 2500}},
        ),
    ],
)
def test_a_small_max_tokens_keeps_the_budget_below_max_tokens(
    mode: ThinkingMode, max_tokens: int, params: dict[str, Any]
) -> None:
    got = api_params(mode, HAIKU, max_tokens)
    assert got == params
    assert 1024 <= got["thinking"]["budget_tokens"] < got["max_tokens"]


@pytest.mark.parametrize("mode", [STANDARD, EXTENDED])
@pytest.mark.parametrize("max_tokens", [1, 1024, 1025, 3000, 4096, 4097, 16000, 16001, 200_000])
def test_budget_tokens_stay_at_least_1024_and_below_max_tokens_for_any_limit(
    mode: ThinkingMode, max_tokens: int
) -> None:
    got = api_params(mode, HAIKU, max_tokens)
    assert 1024 <= got["thinking"]["budget_tokens"] < got["max_tokens"] <= HAIKU.max_output_tokens


def test_max_tokens_is_capped_at_the_models_output_limit() -> None:
    assert [
        api_params(EXTENDED, HAIKU, 100_000)["max_tokens"],
        api_params(EXTENDED, OPUS_47, 200_000)["max_tokens"],
        api_params(STANDARD, OPUS_47, 5000)["max_tokens"],
    ] == [64_000, 128_000, 5000]


def test_instant_on_an_adaptive_model_that_cannot_disable_thinking_uses_low_effort() -> None:
    model = ModelInfo("m", ThinkingStyle.ADAPTIVE, can_disable_thinking=False)
    assert api_params(INSTANT, model, None) == {
        "max_tokens": 4096,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low"},
    }


def test_auto_must_be_resolved_before_asking_for_api_params() -> None:
    with pytest.raises(ValueError, match="resolve `auto` with choose"):
        api_params(ThinkingMode.AUTO, OPUS_47, None)


# -- the model table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model_id", "style"),
    [
        ("opus", "claude-opus-5-5", ThinkingStyle.ADAPTIVE),
        ("sonnet", "claude-sonnet-5-5", ThinkingStyle.ADAPTIVE),
        ("haiku", "claude-haiku-4-5", ThinkingStyle.BUDGET),
        ("claude-4-opus", "claude-opus-4-8", ThinkingStyle.ADAPTIVE),
        ("claude-4-sonnet", "claude-sonnet-4-6", ThinkingStyle.BOTH),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001", ThinkingStyle.BUDGET),
        ("claude-opus-4-5-20251101", "claude-opus-4-5-20251101", ThinkingStyle.BUDGET),
        ("claude-opus-4-7", "claude-opus-4-7", ThinkingStyle.ADAPTIVE),
        (None, "claude-sonnet-5-5", ThinkingStyle.ADAPTIVE),
    ],
)
def test_aliases_and_dated_ids_resolve_to_the_model_family(
    name: str | None, model_id: str, style: ThinkingStyle
) -> None:
    model = ModelTable().resolve(name)
    assert (model.id, model.thinking) == (model_id, style)


def test_a_dated_id_keeps_its_familys_prices_and_limits() -> None:
    assert ModelTable().resolve("claude-haiku-4-5-20251001") == ModelInfo(
        "claude-haiku-4-5-20251001",
        ThinkingStyle.BUDGET,
        input_usd_per_mtok=1,
        output_usd_per_mtok=5,
        max_output_tokens=64_000,
    )


def test_an_unknown_model_is_adaptive_without_a_price() -> None:
    model = ModelTable().resolve("some-future-model")
    assert model == ModelInfo("some-future-model", ThinkingStyle.ADAPTIVE)
    assert model.cost_usd({"input_tokens": 10}) is None


def test_both_style_models_are_sent_adaptive_thinking() -> None:
    sonnet_46 = ModelTable().resolve("claude-4-sonnet")
    assert api_params(STANDARD, sonnet_46, None)["thinking"] == {"type": "adaptive"}


def test_overrides_change_aliases_and_model_fields_without_touching_the_original() -> None:
    base = ModelTable()
    table = base.with_overrides(
        {
            "aliases": {"opus": "claude-opus-4-7", "fast": "claude-haiku-4-5"},
            "models": {
                "claude-haiku-4-5": {"max_output_tokens": 8000},
                "my-model": {"thinking": "budget", "input_usd_per_mtok": 1},
            },
        }
    )
    assert [table.resolve("opus").id, table.resolve("fast").id] == [
        "claude-opus-4-7",
        "claude-haiku-4-5",
    ]
    assert table.resolve("haiku").max_output_tokens == 8000
    assert table.resolve("my-model") == ModelInfo(
        "my-model", ThinkingStyle.BUDGET, input_usd_per_mtok=1
    )
    assert [base.resolve("opus").id, base.resolve("haiku").max_output_tokens] == [
        "claude-opus-5-5",
        64_000,
    ]


def test_an_overridden_output_limit_shrinks_the_thinking_budget() -> None:
    small = ModelTable().with_overrides(
        {"models": {"claude-haiku-4-5": {"max_output_tokens": 8000}}}
    )
    assert api_params(EXTENDED, small.resolve("haiku"), None) == {
        "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"thinking": "weird"}, "model override for 'x': 'weird' is not a valid ThinkingStyle"),
        (
            {"nope": 1},
            "model override for 'x': "
            "ModelInfo.__init__() got an unexpected keyword argument 'nope'",
        ),
    ],
)
def test_bad_overrides_are_configuration_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ModelTable().with_overrides({"models": {"x": fields}})
    assert str(info.value) == message


def test_cost_counts_cache_reads_at_a_tenth_and_cache_writes_at_one_and_a_quarter() -> None:
    haiku = ModelTable().resolve("haiku")  # $1 in, $5 out per million tokens
    usage = {
        "input_tokens": 1_000_000,
        "cache_read_input_tokens": 1_000_000,
        "cache_creation_input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
    }
    assert haiku.cost_usd(usage) == 1 + 0.1 + 1.25 + 5
