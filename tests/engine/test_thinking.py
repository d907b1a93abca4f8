"""Thinking modes: the complexity score behind `auto`, and the API parameters chosen from a
model's capabilities (the model table itself: tests/engine/test_models.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.models import Effort, ModelInfo, ModelTable, ThinkingType
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, ThinkingMode, parse_spec
from tutti_mcp.engine.thinking import (
    ThinkingChoice,
    ThinkingError,
    api_params,
    choose,
    strip_templates,
    thinking_params,
)
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore

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


def test_words_inside_template_references_do_not_count_as_keywords() -> None:
    # "classify" and "review" are step names here, not what the step asks for
    assert choice({"id": "s", "prompt": "Handle routine: ${classify.output}"}, 1).reason == (
        "auto: score 2.5/10 -> instant (base 2; 1 upstream inputs +0.5)"
    )
    assert choice({"id": "s", "prompt": "Summarize ${ review.output | tojson }"}, 1).reason == (
        "auto: score 1.0/10 -> instant (base 2; 1 upstream inputs +0.5; keywords summarize -1.5)"
    )


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("a ${x.output} b", "a   b"),
        ('a ${ {"k": 1} | tojson } b', "a   b"),
        ("${% if x %}yes${% endif %}", " yes "),
        ("no refs", "no refs"),
        ("dangling ${x", "dangling  "),
    ],
)
def test_strip_templates_removes_whole_expressions_nested_braces_included(
    text: str, stripped: str
) -> None:
    assert strip_templates(text) == stripped


# -- API parameters, from capabilities ---------------------------------------------------

T = ThinkingType
ALL = frozenset(Effort)
LMH = frozenset({Effort.LOW, Effort.MEDIUM, Effort.HIGH})


def model(types: set[ThinkingType], efforts: frozenset[Effort] = LMH, **kw: Any) -> ModelInfo:
    return ModelInfo("m", frozenset(types), efforts, **kw)


BUDGET_ONLY = model({T.ENABLED, T.DISABLED}, frozenset())
BOTH = model({T.ADAPTIVE, T.ENABLED, T.DISABLED})
BETWEEN = model({T.ADAPTIVE, T.BETWEEN_TOOLS}, ALL)
ALWAYS_ON = model({T.ADAPTIVE}, ALL)


def adaptive(effort: str | None, max_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {"max_tokens": max_tokens, "thinking": {"type": "adaptive"}}
    if effort:
        out["output_config"] = {"effort": effort}
    return out


def enabled(budget: int, max_tokens: int) -> dict[str, Any]:
    return {"max_tokens": max_tokens, "thinking": {"type": "enabled", "budget_tokens": budget}}


OFF = {"max_tokens": 4096, "thinking": {"type": "disabled"}}


@pytest.mark.parametrize(
    ("caps", "mode", "params"),
    [
        (BUDGET_ONLY, INSTANT, OFF),
        (BUDGET_ONLY, STANDARD, enabled(4096, 12_000)),
        (BUDGET_ONLY, EXTENDED, enabled(16_000, 32_000)),
        (BOTH, INSTANT, OFF),
        (BOTH, STANDARD, adaptive("medium", 16_000)),
        (BOTH, EXTENDED, adaptive("high", 32_000)),
        (
            BETWEEN,
            INSTANT,
            {
                "max_tokens": 4096,
                "thinking": {"type": "between_tools"},
                "output_config": {"effort": "low"},
            },
        ),
        (BETWEEN, STANDARD, adaptive("medium", 16_000)),
        (BETWEEN, EXTENDED, adaptive("high", 32_000)),
        (ALWAYS_ON, INSTANT, adaptive("low", 4096)),
        (ALWAYS_ON, STANDARD, adaptive("medium", 16_000)),
        (model({T.ADAPTIVE}, frozenset()), INSTANT, adaptive(None, 4096)),
        (
            model({T.ADAPTIVE}, frozenset({Effort.HIGH, Effort.MAX})),
            STANDARD,
            adaptive("high", 16_000),
        ),
        (model({T.ADAPTIVE}, frozenset({Effort.MEDIUM})), EXTENDED, adaptive("medium", 32_000)),
        # between_tools takes low, medium or high only: no effort rather than xhigh
        (
            model({T.BETWEEN_TOOLS, T.ADAPTIVE}, frozenset({Effort.XHIGH, Effort.MAX})),
            INSTANT,
            {"max_tokens": 4096, "thinking": {"type": "between_tools"}},
        ),
        # a model that only thinks on a budget: instant is the smallest budget
        (model({T.ENABLED}, frozenset()), INSTANT, enabled(1024, 4096)),
        # a model without thinking: nothing about thinking is sent
        (model(set(), frozenset()), EXTENDED, {"max_tokens": 32_000}),
        (model({T.DISABLED}), STANDARD, {"max_tokens": 16_000, "thinking": {"type": "disabled"}}),
    ],
)
def test_each_mode_maps_onto_what_the_models_capabilities_accept(
    caps: ModelInfo, mode: ThinkingMode, params: dict[str, Any]
) -> None:
    assert api_params(mode, caps, None) == params


@pytest.mark.parametrize(
    ("name", "mode", "params"),
    [
        # the cases: Sonnet 5.5 rejects `disabled`; Opus 5.5 cannot turn thinking off;
        # older ids take no adaptive thinking
        (
            "sonnet",
            INSTANT,
            {
                "max_tokens": 4096,
                "thinking": {"type": "between_tools"},
                "output_config": {"effort": "low"},
            },
        ),
        ("opus", INSTANT, adaptive("low", 4096)),
        ("claude-fable-5-1", INSTANT, adaptive("low", 4096)),
        ("claude-opus-4-1-20250805", STANDARD, enabled(4096, 12_000)),
        ("claude-sonnet-4-20250514", EXTENDED, enabled(16_000, 32_000)),
        ("claude-3-7-sonnet-latest", INSTANT, OFF),
        ("claude-4-sonnet", STANDARD, adaptive("medium", 16_000)),  # 4.6: budget deprecated
        ("claude-opus-4-7", INSTANT, OFF),
    ],
)
def test_shipped_models_get_parameters_they_accept(
    name: str, mode: ThinkingMode, params: dict[str, Any]
) -> None:
    assert api_params(mode, ModelTable().resolve(name), None) == params


@pytest.mark.parametrize(
    ("mode", "max_tokens", "params"),
    [
        # a step's own max_tokens is never raised (it was: 2000 became 2048)
        (STANDARD, 2000, enabled(1024, 2000)),
        (EXTENDED, 2000, enabled(1024, 2000)),
        (STANDARD, 5000, enabled(4096, 5000)),
        (EXTENDED, 5000, enabled(2500, 5000)),
        (EXTENDED, 1536, enabled(1024, 1536)),
        # too small for the minimum budget and room to answer: thinking off, same max_tokens
        (EXTENDED, 1535, {"max_tokens": 1535, "thinking": {"type": "disabled"}}),
        (STANDARD, 300, {"max_tokens": 300, "thinking": {"type": "disabled"}}),
    ],
)
def test_a_small_max_tokens_is_kept_and_the_budget_fits_below_it(
    mode: ThinkingMode, max_tokens: int, params: dict[str, Any]
) -> None:
    assert api_params(mode, BUDGET_ONLY, max_tokens) == params


def test_thinking_off_for_lack_of_room_is_explained() -> None:
    got = thinking_params(EXTENDED, ModelTable().resolve("haiku"), 1000)
    assert got.why == (
        "thinking off (disabled): max_tokens 1000 cannot hold the minimum thinking budget "
        "(1024) plus 512 tokens of answer [capabilities: table]"
    )


def test_a_budget_model_that_cannot_turn_thinking_off_refuses_a_tiny_max_tokens() -> None:
    with pytest.raises(ThinkingError) as info:
        api_params(STANDARD, model({T.ENABLED}, frozenset()), 1000)
    assert str(info.value) == (
        "max_tokens 1000 cannot hold the minimum thinking budget (1024) plus 512 tokens of "
        "answer, and m cannot turn thinking off: raise the step's max_tokens to at least "
        "1536, or choose another model"
    )


@pytest.mark.parametrize(
    "caps", [BUDGET_ONLY, BOTH, BETWEEN, ALWAYS_ON], ids=["budget", "both", "between", "on"]
)
@pytest.mark.parametrize("mode", [INSTANT, STANDARD, EXTENDED])
@pytest.mark.parametrize("max_tokens", [None, 1, 1024, 1535, 1536, 4096, 16_001, 200_000])
def test_max_tokens_never_exceeds_the_step_or_the_model_and_budgets_stay_valid(
    caps: ModelInfo, mode: ThinkingMode, max_tokens: int | None
) -> None:
    small = replace(caps, max_tokens=20_000)
    got = api_params(mode, small, max_tokens)
    assert got["max_tokens"] <= min(max_tokens or 10**9, small.max_tokens)
    thinking = got.get("thinking", {})
    if thinking.get("type") == "enabled":
        assert 1024 <= thinking["budget_tokens"] <= got["max_tokens"] - 512
    effort = got.get("output_config", {}).get("effort")
    if thinking.get("type") != "adaptive":
        assert effort in (None, "low", "medium", "high")
    assert thinking.get("type", "disabled") in {t.value for t in small.thinking_types} | {
        "disabled"
    }


def test_max_tokens_is_capped_at_the_models_output_limit() -> None:
    table = ModelTable()
    assert [
        api_params(EXTENDED, table.resolve("haiku"), 100_000)["max_tokens"],
        api_params(EXTENDED, table.resolve("claude-opus-4-7"), 200_000)["max_tokens"],
        api_params(STANDARD, table.resolve("claude-opus-4-7"), 5000)["max_tokens"],
        api_params(EXTENDED, replace(BUDGET_ONLY, max_tokens=8000), None),
    ] == [64_000, 128_000, 5000, enabled(4000, 8000)]


def test_auto_must_be_resolved_before_asking_for_api_params() -> None:
    with pytest.raises(ValueError, match="resolve `auto` with choose"):
        api_params(ThinkingMode.AUTO, ALWAYS_ON, None)


def test_why_names_the_setting_and_where_the_capabilities_came_from() -> None:
    sonnet = ModelTable().resolve("sonnet")
    assert [thinking_params(m, sonnet, None).why for m in (INSTANT, STANDARD)] == [
        "thinking off: between_tools at effort low (the model does not accept disabled) "
        "[capabilities: table]",
        "adaptive, effort medium [capabilities: table]",
    ]
    assert thinking_params(INSTANT, ModelTable().resolve("opus"), None).why == (
        "adaptive, effort low: the model keeps thinking on, lowest effort [capabilities: table]"
    )


@pytest.mark.anyio
async def test_a_step_no_thinking_setting_fits_is_refused_before_the_run_naming_it() -> None:
    models = ModelTable().with_overrides(
        {"models": {"claude-haiku-4-5": {"thinking_types": ["enabled"]}}}
    )
    executors: dict[ExecutorKind, StepExecutor] = {ExecutorKind.PROMPT: ClientExecutor()}
    engine = Engine(InMemoryRunStore(), executors, EngineConfig(models=models))
    step = {"id": "tiny", "prompt": "hi", "model": "haiku", "thinking": "standard"}
    spec = {"steps": [{**step, "max_tokens": 1000}]}
    with anyio.fail_after(5), pytest.raises(ConfigurationError) as info:
        await engine.run(spec)
    assert str(info.value) == (
        "cannot run this workflow:\n"
        "  - step 'tiny' (standard thinking on claude-haiku-4-5): max_tokens 1000 cannot hold "
        "the minimum thinking budget (1024) plus 512 tokens of answer, and claude-haiku-4-5 "
        "cannot turn thinking off: raise the step's max_tokens to at least 1536, or choose "
        "another model"
    )
