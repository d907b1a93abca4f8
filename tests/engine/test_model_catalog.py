"""The Models API catalog: capabilities from the API over the shipped table, cached in the
database and asked again once stale; offline or unknown models keep the table with one
warning; a run asks only about the models of its API steps."""

from __future__ import annotations

import logging
from pathlib import Path

import anthropic
import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic
from tests.fake_models import FakeModel
from tutti_mcp.engine.model_catalog import ModelCatalog, from_api
from tutti_mcp.engine.models import Effort, ModelTable, Source, ThinkingType
from tutti_mcp.engine.spec import ThinkingMode
from tutti_mcp.engine.thinking import api_params
from tutti_mcp.memory.model_cache import ModelCache
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.settings import Settings, build_engine

pytestmark = pytest.mark.anyio

T = ThinkingType


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
