"""Prompt steps on the real `anthropic` SDK against a local fake Messages API, driven
through the real Engine: request shapes per thinking mode, templates, retries, timeouts,
usage and cost, and the error when no API key is configured."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic, error, malformed, message, tool_use, turn
from tests.fake_anthropic import delay as slow
from tests.seed import SEED_CHAIN as SEED
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.executors.prompt import PromptExecutor
from tutti_mcp.engine.report import markdown_report
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, Step
from tutti_mcp.engine.step_prompts import COMMAND_SYSTEM, system_prompt
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.memory.runs.store import RunStore
from tutti_mcp.server.settings import Settings, build_engine

pytestmark = pytest.mark.anyio

PREAMBLE = system_prompt(Step(id="plain"))  # what every step's system prompt starts with
FAST_RETRY = {"retry-after-ms": "5"}  # the SDK honours it: retries without its 0.5 s backoff


def one_step(**step: Any) -> dict[str, Any]:
    return {"steps": [{"id": "ask", "prompt": "Name one prime.", **step}]}


async def run(
    fake: FakeAnthropic,
    spec: dict[str, Any],
    *,
    max_retries: int = 0,
    store: RunStore | None = None,
    on_event: Callable[[str, str | None, dict[str, Any]], None] | None = None,
) -> RunRecord:
    """Run `spec` to its end on an Engine whose prompt steps call the fake."""
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake.base_url, max_retries=max_retries
    ) as client:
        engine = Engine(
            store or InMemoryRunStore(),
            {ExecutorKind.PROMPT: PromptExecutor(client)},
            EngineConfig(rand=lambda: 0.0),
        )
        with anyio.fail_after(8):
            return await engine.run(spec, on_event=on_event)


# -- request shape ---------------------------------------------------------------------------
BUDGET, ADAPTIVE = "claude-haiku-4-5", "claude-opus-4-7"


@pytest.mark.parametrize(
    ("model", "mode", "thinking_params"),
    [
        (BUDGET, "instant", {"max_tokens": 4096, "thinking": {"type": "disabled"}}),
        (
            BUDGET,
            "standard",
            {"max_tokens": 12_000, "thinking": {"type": "enabled", "budget_tokens": 4096}},
        ),
        (
            BUDGET,
            "extended",
            {"max_tokens": 32_000, "thinking": {"type": "enabled", "budget_tokens": 16_000}},
        ),
        (ADAPTIVE, "instant", {"max_tokens": 4096, "thinking": {"type": "disabled"}}),
        (
            ADAPTIVE,
            "standard",
            {
                "max_tokens": 16_000,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "medium"},
            },
        ),
        (
            ADAPTIVE,
            "extended",
            {
                "max_tokens": 32_000,
                "thinking": {"type": "adaptive"},
                "output_config": {"effort": "high"},
            },
        ),
    ],
)
async def test_each_thinking_mode_sends_the_models_thinking_settings(
    fake_anthropic: FakeAnthropic, model: str, mode: str, thinking_params: dict[str, Any]
) -> None:
    record = await run(fake_anthropic, one_step(model=model, thinking=mode))

    assert record.status == "succeeded"
    assert [r.path for r in fake_anthropic.requests] == ["/v1/messages"]
    assert fake_anthropic.bodies == [
        {
            "model": model,
            "system": PREAMBLE,
            "messages": [{"role": "user", "content": "Name one prime."}],
            **thinking_params,
            "metadata": {"user_id": f"tutti:{record.id}"},
        }
    ]


async def test_seed_commands_become_named_prompts_and_upstream_results_render_downstream(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(message("SQL injection in db.py line 12"), message("patched db.py"))

    await run(fake_anthropic, SEED)

    sent = [(b["system"], b["messages"]) for b in fake_anthropic.bodies]
    assert sent == [
        (
            f"{PREAMBLE}\n\n{COMMAND_SYSTEM['/query']}",
            [{"role": "user", "content": "analyze Python security vulnerabilities"}],
        ),
        (
            f"{PREAMBLE}\n\n{COMMAND_SYSTEM['/task']}",
            [{"role": "user", "content": "fix security issues: SQL injection in db.py line 12"}],
        ),
        (
            f"{PREAMBLE}\n\n{COMMAND_SYSTEM['/protocol']}",
            [{"role": "user", "content": "run security validation"}],
        ),
    ]


async def test_the_seed_chain_runs_end_to_end_on_the_api(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(
        message("found 2 issues"), message("fixed both"), message("PASS: all checks")
    )

    record = await run(fake_anthropic, SEED)

    assert record.status == "succeeded"
    assert {sid: (s.status.value, s.output, s.executor) for sid, s in record.steps.items()} == {
        "analyze_codebase": ("succeeded", "found 2 issues", "prompt"),
        "fix_issues": ("succeeded", "fixed both", "prompt"),
        "validate_fixes": ("succeeded", "PASS: all checks", "prompt"),
    }
    assert len(fake_anthropic.requests) == 3
    assert {r.headers["authorization"] for r in fake_anthropic.requests} == {"Bearer test"}


# -- retries ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("failures", "expected_requests"),
    [
        (
            [
                error(529, "Overloaded", headers=FAST_RETRY),
                error(529, "Overloaded", headers=FAST_RETRY),
            ],
            3,
        ),
        # `retry-after: 0` is not positive, so the SDK falls back to its own ~0.5 s backoff
        ([error(429, "Number of request tokens has exceeded your rate limit", retry_after="0")], 2),
    ],
    ids=["529-overloaded", "429-rate-limited"],
)
async def test_the_sdk_retries_overload_and_rate_limits_and_the_step_succeeds(
    fake_anthropic: FakeAnthropic, failures: list[Any], expected_requests: int
) -> None:
    fake_anthropic.script(*failures, message("finally"))

    record = await run(fake_anthropic, one_step(), max_retries=2)

    assert (record.status.value, record.steps["ask"].output) == ("succeeded", "finally")
    assert record.steps["ask"].attempts == 1  # the SDK retried inside one step attempt
    assert len(fake_anthropic.requests) == expected_requests


async def test_exhausted_sdk_retries_fail_the_step_with_the_status(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(*[error(529, "Overloaded", headers=FAST_RETRY)] * 2)

    record = await run(fake_anthropic, one_step(model=BUDGET), max_retries=1)

    step = record.steps["ask"]
    assert (record.status.value, step.status.value, step.attempts) == ("failed", "failed", 1)
    assert step.error == "Anthropic API error 529 from claude-haiku-4-5: Overloaded"
    assert len(fake_anthropic.requests) == 2


async def test_the_step_retry_policy_makes_another_attempt_after_sdk_retries_run_out(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(
        *[error(529, "Overloaded", headers=FAST_RETRY)] * 2, message("second time lucky")
    )
    events: list[tuple[str, str | None, dict[str, Any]]] = []

    record = await run(
        fake_anthropic,
        one_step(model=BUDGET, retry={"attempts": 2, "backoff_s": 0}),
        max_retries=1,
        on_event=lambda kind, sid, data: events.append((kind, sid, data)),
    )

    step = record.steps["ask"]
    assert (step.status.value, step.output, step.attempts) == ("succeeded", "second time lucky", 2)
    assert [e for e in events if e[0] == "step_retrying"] == [
        (
            "step_retrying",
            "ask",
            {
                "attempt": 1,
                "error": "Anthropic API error 529 from claude-haiku-4-5: Overloaded",
                "delay_s": 0.0,
            },
        ),
    ]
    assert len(fake_anthropic.requests) == 3


async def test_a_400_is_not_retried_and_the_error_carries_the_api_message(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(error(400, "max_tokens: 999999 > 64000, which is the maximum"))

    record = await run(
        fake_anthropic, one_step(model=BUDGET, retry={"attempts": 3, "backoff_s": 0}), max_retries=2
    )

    step = record.steps["ask"]
    assert (step.status.value, step.attempts) == ("failed", 1)
    assert step.error == (
        "Anthropic API error 400 from claude-haiku-4-5: max_tokens: 999999 > 64000, which is the maximum"
    )
    assert step.failure["retryable"] is False
    assert len(fake_anthropic.requests) == 1


async def test_a_refusal_fails_the_step_without_retry(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(message("", stop_reason="refusal"))

    record = await run(
        fake_anthropic, one_step(model=BUDGET, retry={"attempts": 3, "backoff_s": 0}), max_retries=2
    )

    step = record.steps["ask"]
    assert (step.status.value, step.attempts, step.error) == (
        "failed",
        1,
        "claude-haiku-4-5 refused the request (stop_reason refusal). A refusal is not "
        "retried: rephrase the prompt or choose another model",
    )
    assert (step.failure["error_kind"], step.failure["retryable"]) == (
        "refusal",
        False,
    )
    assert len(fake_anthropic.requests) == 1


# -- what a call's result says: truncation, refused tokens, malformed bodies ------------------
async def test_a_max_tokens_stop_fails_a_text_step_by_default_and_says_what_to_change(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(message("The first prime is", stop_reason="max_tokens"))

    record = await run(
        fake_anthropic, one_step(model=BUDGET, thinking="instant", retry={"attempts": 3})
    )

    step = record.steps["ask"]
    assert (step.status.value, step.attempts, step.error) == (
        "failed",
        1,
        "the answer was cut off at max_tokens (4096); raise the step's `max_tokens`, or set "
        "`on_truncation: accept` to keep cut-off answers",
    )
    assert (step.failure["error_kind"], step.failure["retryable"]) == (
        "truncated",
        False,
    )
    assert len(fake_anthropic.requests) == 1


async def test_an_accepted_truncation_is_the_output_and_is_recorded_as_truncated(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(message("The first prime is", stop_reason="max_tokens"))

    record = await run(
        fake_anthropic,
        one_step(model=BUDGET, thinking="instant", max_tokens=300, on_truncation="accept"),
    )

    step = record.steps["ask"]
    warning = (
        "truncated: the answer was cut off at max_tokens (300) (accepted: `on_truncation: accept`)"
    )
    assert (record.status.value, step.status.value, step.output) == (
        "succeeded",
        "succeeded",
        "The first prime is",
    )
    assert (step.usage or {})["truncated"] is True
    assert (step.usage or {})["stop_reason"] == "max_tokens"
    assert step.error == warning  # shown with the step in workflow_status and the report
    assert "| ask | succeeded | 1 |" in markdown_report(record)
    assert warning in markdown_report(record)


async def test_a_refused_calls_tokens_and_cost_count_in_the_run_totals(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(
        message("", stop_reason="refusal", input_tokens=1000, output_tokens=20),
        message("7", input_tokens=100, output_tokens=10),
    )
    spec = {
        "defaults": {"model": BUDGET, "thinking": "instant"},
        "steps": [
            {"id": "refused", "prompt": "something refused", "on_failure": "continue"},
            {"id": "fine", "prompt": "a prime", "depends_on": ["refused"], "trigger": "all_done"},
        ],
    }

    async with await SqliteRunStore.open(":memory:") as store:
        record = await run(fake_anthropic, spec, store=store)
        stored = await store.load_run(record.id)

    refused_cost = (1000 * 1 + 20 * 5) / 1e6
    fine_cost = (100 * 1 + 10 * 5) / 1e6
    assert stored.steps["refused"].status.value == "failed"
    assert stored.steps["refused"].failure["usage"] == pytest.approx(
        {
            "input_tokens": 1000,
            "output_tokens": 20,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "thinking_tokens": 0,
            "cost_usd": refused_cost,
        }
    )
    assert record.metrics is not None
    assert (
        record.metrics["tokens"]["input_tokens"],
        record.metrics["tokens"]["output_tokens"],
    ) == (
        1100,
        30,
    )
    assert record.metrics["cost_usd"] == pytest.approx(refused_cost + fine_cost)


async def test_a_refused_calls_tokens_count_against_the_runs_token_budget(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(message("", stop_reason="refusal", input_tokens=5000, output_tokens=0))
    spec = {
        "budget": {"max_tokens": 1000},
        "defaults": {"model": BUDGET, "thinking": "instant"},
        "steps": [
            {"id": "refused", "prompt": "something refused", "on_failure": "continue"},
            {"id": "later", "prompt": "more", "depends_on": ["refused"], "trigger": "all_done"},
        ],
    }

    record = await run(fake_anthropic, spec)

    assert (record.status.value, record.error) == (
        "failed",
        "token budget exceeded: 5000 > 1000",
    )
    assert record.steps["later"].status.value == "pending"
    assert len(fake_anthropic.requests) == 1


async def test_the_tokens_of_a_failed_attempt_count_when_a_retry_succeeds(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(
        message("not json", input_tokens=300, output_tokens=30),
        message('{"prime": 7}', input_tokens=300, output_tokens=10),
    )

    record = await run(
        fake_anthropic,
        one_step(
            model=BUDGET, thinking="instant", output="json", retry={"attempts": 2, "backoff_s": 0}
        ),
    )

    step = record.steps["ask"]
    assert (step.status.value, step.output, step.attempts) == ("succeeded", {"prime": 7}, 2)
    assert (step.usage or {})["earlier_attempts"] == pytest.approx(
        {
            "input_tokens": 300,
            "output_tokens": 30,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "thinking_tokens": 0,
            "cost_usd": (300 * 1 + 30 * 5) / 1e6,
        }
    )
    assert record.metrics is not None
    assert (
        record.metrics["tokens"]["input_tokens"],
        record.metrics["tokens"]["output_tokens"],
    ) == (
        600,
        40,
    )
    assert record.metrics["cost_usd"] == pytest.approx((600 * 1 + 40 * 5) / 1e6)


async def test_a_failed_steps_tokens_still_count_after_a_resume_reruns_it(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(
        message("", stop_reason="refusal", input_tokens=1000, output_tokens=0),
        message("7", input_tokens=100, output_tokens=10),
    )

    async with (
        await SqliteRunStore.open(":memory:") as store,
        anthropic.AsyncAnthropic(
            api_key="test", base_url=fake_anthropic.base_url, max_retries=0
        ) as client,
    ):
        engine = Engine(
            store, {ExecutorKind.PROMPT: PromptExecutor(client)}, EngineConfig(rand=lambda: 0.0)
        )
        with anyio.fail_after(8):
            failed = await engine.run(one_step(model=BUDGET, thinking="instant"))
            resumed = await engine.resume(failed.id)

    step = resumed.steps["ask"]
    assert (failed.status.value, resumed.status.value, step.output) == ("failed", "succeeded", "7")
    assert (step.usage or {})["earlier_attempts"]["input_tokens"] == 1000
    assert resumed.metrics is not None
    assert resumed.metrics["tokens"]["input_tokens"] == 1100
    assert resumed.metrics["cost_usd"] == pytest.approx((1100 * 1 + 10 * 5) / 1e6)


async def test_a_malformed_json_body_from_the_api_names_the_api_and_model_and_is_retried(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(malformed(), message("7"))
    events: list[tuple[str, str | None, dict[str, Any]]] = []

    record = await run(
        fake_anthropic,
        one_step(model=BUDGET, retry={"attempts": 2, "backoff_s": 0}),
        on_event=lambda kind, sid, data: events.append((kind, sid, data)),
    )

    step = record.steps["ask"]
    assert (step.status.value, step.output, step.attempts) == ("succeeded", "7", 2)
    assert [data["error"] for kind, _, data in events if kind == "step_retrying"] == [
        "malformed JSON from the Anthropic API (model claude-haiku-4-5): JSONDecodeError: "
        "Unterminated string starting at: line 1 column 60 (char 59); a retry may help"
    ]


async def test_an_api_error_after_memory_tool_turns_keeps_those_turns_tokens(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    fake_anthropic.script(
        turn(tool_use("t1", {"command": "view", "path": "/memories"}), input_tokens=400),
        error(400, "prompt is too long"),
    )

    async with (
        await SqliteRunStore.open(":memory:") as store,
        anthropic.AsyncAnthropic(
            api_key="test", base_url=fake_anthropic.base_url, max_retries=0
        ) as client,
    ):
        executor = PromptExecutor(client, memory=AsyncMemoryFiles.of(store))
        engine = Engine(store, {ExecutorKind.PROMPT: executor}, EngineConfig(workspace=tmp_path))
        with anyio.fail_after(8):
            record = await engine.run(one_step(model=BUDGET, thinking="instant", memory=True))

    step = record.steps["ask"]
    assert (step.status.value, step.error) == (
        "failed",
        "Anthropic API error 400 from claude-haiku-4-5: prompt is too long",
    )
    assert (step.failure["usage"]["input_tokens"], len(fake_anthropic.requests)) == (400, 2)
    assert record.metrics is not None
    assert record.metrics["tokens"]["input_tokens"] == 400


# -- timeouts --------------------------------------------------------------------------------
async def test_a_step_timeout_fails_a_slow_call_quickly(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(slow(5.0))
    started = time.monotonic()

    record = await run(fake_anthropic, one_step(timeout=0.5))

    elapsed = time.monotonic() - started
    step = record.steps["ask"]
    assert (record.status.value, step.status.value) == ("failed", "failed")
    assert step.failure["error_kind"] == "timeout"
    assert "0.5s" in (step.error or "")
    assert elapsed < 3.0


# -- usage and cost --------------------------------------------------------------------------
async def test_usage_and_cost_are_recorded_per_step_and_summed_in_the_run_metrics(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(
        message(
            "a",
            input_tokens=1000,
            output_tokens=500,
            cache_creation_input_tokens=2000,
            cache_read_input_tokens=10_000,
            thinking_tokens=300,
        ),
        message("b", input_tokens=200, output_tokens=100),
    )
    spec = {
        "defaults": {"model": BUDGET, "thinking": "standard"},
        "steps": [
            {"id": "first", "prompt": "one"},
            {"id": "second", "prompt": "two ${first.output}", "depends_on": ["first"]},
        ],
    }

    async with await SqliteRunStore.open(":memory:") as store:
        record = await run(fake_anthropic, spec, store=store)
        stored = await store.load_run(record.id)

    # haiku-4-5 at $1/$5 per MTok; cache writes 1.25x input, cache reads 0.1x input
    first_cost = (1000 * 1 + 2000 * 1.25 + 10_000 * 0.1 + 500 * 5) / 1e6
    second_cost = (200 * 1 + 100 * 5) / 1e6
    assert stored.steps["first"].usage == pytest.approx(
        {
            "input_tokens": 1000,
            "output_tokens": 500,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 10_000,
            "thinking_tokens": 300,
            "model": BUDGET,
            "stop_reason": "end_turn",
            "cost_usd": first_cost,
        }
    )
    assert stored.steps["second"].usage == pytest.approx(
        {
            "input_tokens": 200,
            "output_tokens": 100,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "thinking_tokens": 0,
            "model": BUDGET,
            "stop_reason": "end_turn",
            "cost_usd": second_cost,
        }
    )
    assert record.metrics is not None
    assert record.metrics["tokens"] == {
        "input_tokens": 1200,
        "output_tokens": 600,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 10_000,
        "thinking_tokens": 300,
    }
    assert record.metrics["cost_usd"] == pytest.approx(first_cost + second_cost)


# -- configuration ---------------------------------------------------------------------------
async def test_without_an_api_key_the_seed_chain_is_refused_with_how_to_configure_one(
    tmp_path: Path,
) -> None:
    store = InMemoryRunStore()
    engine = build_engine(Settings(db_path=tmp_path / "tutti.db", api_key=None), store)

    with anyio.fail_after(5), pytest.raises(ConfigurationError) as caught:
        await engine.run(SEED)

    msg = str(caught.value)
    assert "analyze_codebase" in msg
    assert "none is configured" in msg
    assert "ANTHROPIC_API_KEY" in msg
    assert "run: client" in msg
    assert await store.list_runs() == []  # refused before anything was stored
