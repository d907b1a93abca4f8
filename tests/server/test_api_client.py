"""The Anthropic client made on demand (server/api_client.py): one per process however many
callers ask at once, made only when a prompt step runs or the Models API must be asked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anthropic
import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic
from tutti_mcp.engine.model_catalog import ModelCatalog
from tutti_mcp.engine.models import ModelTable, Source
from tutti_mcp.server.api_client import AnthropicOnDemand

pytestmark = pytest.mark.anyio


class CountingMaker(AnthropicOnDemand):
    def __init__(self, base_url: str) -> None:
        super().__init__("test", base_url, max_retries=0)
        self.calls = 0

    async def __call__(self) -> anthropic.AsyncAnthropic:
        self.calls += 1
        return await super().__call__()


class FreshCache:
    """A capability cache holding fresh answers for the models given, and no others."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers

    async def load(
        self, ids: Iterable[str] | None = None
    ) -> dict[str, tuple[dict[str, Any], float]]:
        wanted = (
            self.answers if ids is None else {i: self.answers[i] for i in ids if i in self.answers}
        )
        return {i: (data, 1_000.0) for i, data in wanted.items()}

    async def save(self, entries: Iterable[tuple[str, dict[str, Any], float]]) -> None:
        pass


async def test_callers_asking_at_once_share_one_client_with_the_settings() -> None:
    maker = AnthropicOnDemand("test", "http://127.0.0.1:9", max_retries=3)
    made: list[anthropic.AsyncAnthropic] = []

    async def ask() -> None:
        made.append(await maker())

    with anyio.fail_after(30):  # the first call imports the SDK in a worker thread
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(ask)
    assert len(made) == 4 and all(c is made[0] for c in made)
    assert (str(made[0].base_url).rstrip("/"), made[0].max_retries) == ("http://127.0.0.1:9", 3)


async def test_the_catalog_makes_no_client_when_the_cache_answers_for_every_model(
    fake_anthropic: FakeAnthropic,
) -> None:
    info = await anthropic.AsyncAnthropic(
        api_key="test", base_url=fake_anthropic.base_url
    ).models.retrieve("claude-haiku-5-5")
    maker = CountingMaker(fake_anthropic.base_url)
    cache = FreshCache({"claude-haiku-5-5": info.model_dump(mode="json")})
    catalog = ModelCatalog(ModelTable(), maker, cache, clock=lambda: 1_000.0)
    with anyio.fail_after(10):
        await catalog.ensure(["claude-haiku-5-5"])
    assert (maker.calls, catalog.table.resolve("claude-haiku-5-5").source) == (0, Source.CACHE)

    with anyio.fail_after(10):  # a model the cache does not know: now the API is asked
        await catalog.ensure(["claude-sonnet-5-5"])
    assert maker.calls == 1
    assert catalog.table.resolve("claude-sonnet-5-5").source is Source.API
