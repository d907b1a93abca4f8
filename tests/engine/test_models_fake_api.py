"""The fake Messages API checks what the real one checks, and every SDK model id in every
thinking mode, sent through the real PromptExecutor, is accepted by it: with the shipped
table alone, and with capabilities learned from its Models API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest

from tests.engine.test_models import MODES, sdk_model_ids
from tests.fake_anthropic import FakeAnthropic
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.prompt import PromptExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.server.settings import Settings, build_engine

pytestmark = pytest.mark.anyio


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
    steps: list[dict[str, Any]] = [
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
