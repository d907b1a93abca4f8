"""The model table (every id the SDK knows, prices, overrides), the Models API catalog
(cache, refresh, offline fallback) and the fake Messages API's model checks, with every
SDK model id in every thinking mode sent through the real PromptExecutor."""

from __future__ import annotations

import logging
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest

from engine.engine import Engine, EngineConfig
from engine.errors import ConfigurationError
from engine.executors.prompt import PromptExecutor
from engine.model_catalog import ModelCatalog, from_api
from engine.model_table import ALIASES
from engine.models import Effort, ModelInfo, ModelTable, Prices, Source, ThinkingType
from engine.spec import ExecutorKind, ThinkingMode
from engine.thinking import api_params
from memory.mem_store import InMemoryRunStore
from memory.model_cache import ModelCache
from memory.sqlite_store import SqliteRunStore
from server.settings import Settings, build_engine
from tests.fake_anthropic import FakeAnthropic
from tests.fake_models import FakeModel

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


# -- the fake Messages API checks what the real one checks ------------------------------------
@pytest.fixture
async def client(fake_anthropic: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake_anthropic.base_url, max_retries=0
    ) as c:
        yield c


@pytest.mark.parametrize(
    ("model", "params", "status", "message"),
    [
        (
            "claude-sonnet-5-5",
            {"thinking": {"type": "disabled"}},
            400,
            '"thinking.type.disabled" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.',
        ),
        (
            "claude-opus-5-5",
            {"thinking": {"type": "between_tools"}},
            400,
            '"thinking.type.between_tools" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.',
        ),
        (
            "claude-opus-4-1",
            {"thinking": {"type": "adaptive"}},
            400,
            '"thinking.type.adaptive" is not supported for this model.',
        ),
        (
            "claude-haiku-4-5",
            {"thinking": {"type": "enabled", "budget_tokens": 1000}},
            400,
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            "claude-haiku-4-5",
            {"thinking": {"type": "enabled", "budget_tokens": 4096}},
            400,
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/"
            "extended-thinking#max-tokens-and-context-window-size",
        ),
        (
            "claude-haiku-4-5",
            {"output_config": {"effort": "low"}},
            400,
            '"output_config.effort" is not supported for this model.',
        ),
        (
            "claude-sonnet-5-5",
            {"thinking": {"type": "between_tools"}, "output_config": {"effort": "max"}},
            400,
            '"output_config.effort": "max" requires "thinking.type.adaptive"; with '
            '"thinking.type.between_tools" use low, medium or high.',
        ),
        (
            "claude-haiku-4-5",
            {"max_tokens": 100_000},
            400,
            "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens "
            "for claude-haiku-4-5",
        ),
        ("claude-nonexistent", {}, 404, "model: claude-nonexistent"),
    ],
)
async def test_the_fake_api_rejects_what_the_real_api_rejects(
    client: anthropic.AsyncAnthropic,
    fake_anthropic: FakeAnthropic,
    model: str,
    params: dict[str, Any],
    status: int,
    message: str,
) -> None:
    request = {"max_tokens": 4096, **params}
    with anyio.fail_after(5), pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(
            model=model, messages=[{"role": "user", "content": "hi"}], timeout=5, **request
        )
    assert isinstance(info.value.body, dict)
    assert (info.value.status_code, info.value.body["error"]["message"]) == (status, message)


async def test_the_fake_api_lists_its_models_page_by_page(
    client: anthropic.AsyncAnthropic, fake_anthropic: FakeAnthropic
) -> None:
    with anyio.fail_after(5):
        listed = [m.id async for m in client.models.list(limit=7)]
        one = await client.models.retrieve("claude-sonnet-5-5")
    assert listed == list(fake_anthropic.models)
    assert sum(r.path.startswith("/v1/models?") for r in fake_anthropic.requests) == 4
    assert one.capabilities is not None
    assert one.capabilities.thinking.types.between_tools.supported is True
    assert one.capabilities.thinking.types.disabled.supported is False


# -- every SDK model in every mode, through the real PromptExecutor ---------------------------
def every_model_in_every_mode() -> dict[str, Any]:
    ids = [*sdk_model_ids(), "claude-opus-4-1", "claude-sonnet-4-20250514"]
    steps = [
        {"id": f"s{i}_{mode}", "prompt": "hi", "model": model_id, "thinking": mode}
        for i, model_id in enumerate(ids)
        for mode in MODES
    ]
    # a step's small max_tokens on every model: the budget shrinks or thinking goes off
    steps += [
        {
            "id": f"s{i}_small",
            "prompt": "hi",
            "model": m,
            "thinking": "extended",
            "max_tokens": 2000,
        }
        for i, m in enumerate(ids)
    ]
    return {"name": "every-model", "steps": steps}


@pytest.mark.parametrize("learn", [False, True], ids=["table", "models-api"])
@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")  # the SDK's
async def test_every_sdk_model_in_every_thinking_mode_is_accepted_by_the_fake_api(
    fake_anthropic: FakeAnthropic, learn: bool
) -> None:
    spec = every_model_in_every_mode()
    settings = Settings(db_path=Path(":memory:"), api_key="test", base_url=fake_anthropic.base_url)
    engine = build_engine(settings, InMemoryRunStore())
    if not learn:
        engine.config.catalog = None  # the shipped table alone decides
    with anyio.fail_after(20):
        run = await engine.run(spec)
    failed = {
        s: (r.status.value, r.error) for s, r in run.steps.items() if r.status.value != "succeeded"
    }
    assert (run.error, failed) == (None, {})
    sent = [r for r in fake_anthropic.requests if r.path == "/v1/messages"]
    assert len(sent) == len(spec["steps"])
    asked = [r.path for r in fake_anthropic.requests if r.path.startswith("/v1/models")]
    assert len(asked) == (len({s["model"] for s in spec["steps"]}) if learn else 0)


async def test_the_old_mapping_would_have_been_rejected(fake_anthropic: FakeAnthropic) -> None:
    # what tutti sent before: `disabled` to Sonnet 5.5 (instant), adaptive to Opus 4.1
    old = ModelTable().with_overrides(
        {
            "models": {
                "claude-sonnet-5-5": {"thinking": "adaptive"},
                "claude-opus-4-1": {"thinking": "adaptive"},
            }
        }
    )
    spec = {
        "steps": [
            {"id": "quick", "prompt": "hi", "model": "sonnet", "thinking": "instant"},
            {"id": "old", "prompt": "hi", "model": "claude-opus-4-1", "thinking": "standard"},
        ]
    }
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake_anthropic.base_url, max_retries=0
    ) as c:
        engine = Engine(
            InMemoryRunStore(),
            {ExecutorKind.PROMPT: PromptExecutor(c, old)},
            EngineConfig(models=old),
        )
        with anyio.fail_after(8):
            run = await engine.run(spec)
    assert {s: (r.status.value, r.error) for s, r in run.steps.items()} == {
        "quick": (
            "failed",
            'Anthropic API error 400 from claude-sonnet-5-5: "thinking.type.disabled" is not '
            'supported for this model. Use "thinking.type.adaptive" and "output_config.effort" '
            "to control thinking behavior.",
        ),
        "old": (
            "failed",
            'Anthropic API error 400 from claude-opus-4-1: "thinking.type.adaptive" is not '
            "supported for this model.",
        ),
    }


# -- the Models API catalog -------------------------------------------------------------------
def catalog_for(
    fake: FakeAnthropic,
    cache: ModelCache | None = None,
    *,
    now: float = 1_000.0,
    max_age_s: float = 3600,
) -> ModelCatalog:
    client = anthropic.AsyncAnthropic(api_key="test", base_url=fake.base_url)
    return ModelCatalog(ModelTable(), client, cache, max_age_s=max_age_s, clock=lambda: now)


def model_paths(fake: FakeAnthropic) -> list[str]:
    return [r.path for r in fake.requests if r.path.startswith("/v1/models")]


async def test_capabilities_come_from_the_models_api_over_the_table(
    fake_anthropic: FakeAnthropic,
) -> None:
    # the API says what the table does not: haiku-5-5 can turn thinking off
    fake_anthropic.models["claude-haiku-5-5"] = FakeModel(
        frozenset({"adaptive", "disabled"}), frozenset({"low", "medium"}), max_tokens=8000
    )
    catalog = catalog_for(fake_anthropic)
    with anyio.fail_after(5):
        await catalog.ensure(["claude-haiku-5-5", "claude-haiku-5-5", "sonnet"])
        await catalog.ensure(["claude-haiku-5-5"])  # once per process per model
    model = catalog.table.resolve("claude-haiku-5-5")
    assert (model.source, model.thinking_types, model.efforts, model.max_tokens) == (
        Source.API,
        frozenset({T.ADAPTIVE, T.DISABLED}),
        frozenset({Effort.LOW, Effort.MEDIUM}),
        8000,
    )
    assert api_params(ThinkingMode.INSTANT, model, None) == {
        "max_tokens": 4096,
        "thinking": {"type": "disabled"},
    }
    assert api_params(ThinkingMode.EXTENDED, model, None) == {
        "max_tokens": 8000,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "medium"},
    }
    assert sorted(model_paths(fake_anthropic)) == [
        "/v1/models/claude-haiku-5-5",
        "/v1/models/claude-sonnet-5-5",
    ]


async def test_answers_are_cached_in_the_database_and_asked_again_once_stale(
    fake_anthropic: FakeAnthropic,
) -> None:
    async with await SqliteRunStore.open(":memory:") as store:
        cache = ModelCache.of(store)
        with anyio.fail_after(5):
            await catalog_for(fake_anthropic, cache, now=1_000).ensure(["opus"])
            # a new process within the refresh age: from the cache, no request
            fresh = catalog_for(fake_anthropic, cache, now=4_000)
            await fresh.ensure(["opus"])
            assert fresh.table.resolve("opus").source is Source.CACHE
            assert model_paths(fake_anthropic) == ["/v1/models/claude-opus-5-5"]
            # past the refresh age: asked again, and the cache renewed
            stale = catalog_for(fake_anthropic, cache, now=4_601)
            await stale.ensure(["opus"])
            assert stale.table.resolve("opus").source is Source.API
            assert model_paths(fake_anthropic) == ["/v1/models/claude-opus-5-5"] * 2
            assert (await cache.load(["claude-opus-5-5"]))["claude-opus-5-5"][1] == 4_601


async def test_offline_the_table_stays_with_one_warning_and_a_stale_cache_still_counts(
    fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    async with await SqliteRunStore.open(":memory:") as store:
        cache = ModelCache.of(store)
        answer = fake_anthropic.models["claude-opus-4-7"].info("claude-opus-4-7")
        answer["max_tokens"] = 5000
        await cache.save([("claude-opus-4-7", answer, 0.0)])  # long stale
        fake_anthropic.stop()  # nothing answers any more
        catalog = catalog_for(fake_anthropic, cache, now=1_000_000)
        with caplog.at_level(logging.DEBUG, "tutti.models"), anyio.fail_after(10):
            await catalog.ensure(["claude-opus-4-7", "haiku", "sonnet"])
            await catalog.ensure(["opus"])  # offline already known: not asked
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "cannot reach the Models API (APIConnectionError); using the shipped model table "
        "(engine/model_table.py)"
    ]
    table = catalog.table
    assert [table.resolve(n).source for n in ("claude-opus-4-7", "haiku", "sonnet", "opus")] == [
        Source.CACHE,
        Source.TABLE,
        Source.TABLE,
        Source.TABLE,
    ]
    assert table.resolve("claude-opus-4-7").max_tokens == 5000


async def test_a_model_the_api_does_not_know_keeps_the_table_with_a_warning(
    fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    del fake_anthropic.models["claude-mythos-preview"]
    catalog = catalog_for(fake_anthropic)
    with caplog.at_level(logging.WARNING, "tutti.models"), anyio.fail_after(5):
        await catalog.ensure(["claude-mythos-preview", "haiku"])
    assert [r.getMessage() for r in caplog.records] == [
        "the Models API did not describe claude-mythos-preview (HTTP 404); using the shipped "
        "model table (engine/model_table.py)"
    ]
    assert catalog.table.resolve("claude-mythos-preview").source is Source.TABLE
    assert catalog.table.resolve("haiku").source is Source.API


def test_an_answer_without_capabilities_is_not_used() -> None:
    with pytest.raises(ValueError, match="reports no capabilities for m"):
        from_api("m", {"id": "m", "max_tokens": 10, "capabilities": None}, Source.API)


async def test_a_run_asks_only_about_the_models_of_its_api_steps_and_plans_with_the_answer(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.models["claude-haiku-5-5"] = FakeModel(frozenset({"adaptive", "disabled"}))
    settings = Settings(db_path=Path(":memory:"), api_key="test", base_url=fake_anthropic.base_url)
    engine = build_engine(settings, InMemoryRunStore())
    spec = {
        "steps": [
            {"id": "api", "prompt": "hi", "model": "claude-haiku-5-5", "thinking": "instant"},
            {"id": "mine", "prompt": "hi", "model": "opus", "run": "client"},
            {"id": "calc", "args": "x"},
        ]
    }
    with anyio.fail_after(5):
        plan, _ = await engine.plan_with_history(engine.compile(spec))
    assert model_paths(fake_anthropic) == ["/v1/models/claude-haiku-5-5"]
    step = plan.steps["api"]
    assert (step.api_params, step.api_params_why) == (
        {"max_tokens": 4096, "thinking": {"type": "disabled"}},
        "thinking off (disabled) [capabilities: api]",
    )
