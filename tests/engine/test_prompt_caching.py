"""Prompt caching, structured outputs and stop reasons of prompt steps, on the real
`anthropic` SDK against the local fake Messages API (which accounts cache reads and
writes like the real one: tests/fake_cache.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic, estimated, message, text_block, turn
from tests.fake_cache import tokens
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import SpecError
from tutti_mcp.engine.executors.prompt import PromptExecutor
from tutti_mcp.engine.executors.prompt_cache import WarmOrder
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.report import markdown_report
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, Step, parse_spec
from tutti_mcp.engine.step_prompts import JSON_HINT, SCHEMA_HINT, system_prompt
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-5-5"  # $2 / $10 per MTok; structured outputs
PREAMBLE = system_prompt(Step(id="plain"))
DOC = "".join(
    f"Clause {i}: the supplier delivers lot {i} within {i % 30 + 1} days. " for i in range(130)
)
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(default=estimated("ok", output_tokens=2)).start()
    try:
        yield fake
    finally:
        fake.stop()


async def run(
    fake: FakeAnthropic, spec: dict[str, Any], *, models: ModelTable | None = None, **kw: Any
) -> RunRecord:
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake.base_url, max_retries=0
    ) as client:
        engine = Engine(
            InMemoryRunStore(),
            {ExecutorKind.PROMPT: PromptExecutor(client, models, **kw)},
            EngineConfig(rand=lambda: 0.0, models=models or ModelTable()),
        )
        with anyio.fail_after(8):
            return await engine.run(spec, inputs={"doc": DOC})


def fan_out(n: int, **step: Any) -> dict[str, Any]:
    return {
        "inputs": {"doc": {"type": "string"}},
        "defaults": {"model": MODEL, "thinking": "instant"},
        "steps": [
            {"id": f"q{i}", "prompt": f"Question {i} about the contract.", **step} for i in range(n)
        ],
    }


# -- prompt caching --------------------------------------------------------------------------
async def test_parallel_steps_sharing_a_long_context_write_its_cache_once_and_read_it_after(
    fake: FakeAnthropic,
) -> None:
    record = await run(fake, fan_out(4, context=["${inputs.doc}"], system="Answer in one line."))

    shared = f"{PREAMBLE}\n\n{DOC}"
    assert {json.dumps(b["system"]) for b in fake.bodies} == {
        json.dumps(
            [
                {"type": "text", "text": shared, "cache_control": EPHEMERAL},
                {"type": "text", "text": "Answer in one line.", "cache_control": EPHEMERAL},
            ]
        )
    }
    prefix = tokens(len(shared) + len("Answer in one line."))
    per_step = sorted((s.usage or {})["cache_creation_input_tokens"] for s in record.steps.values())
    reads = [(s.usage or {})["cache_read_input_tokens"] for s in record.steps.values()]
    assert (per_step, sorted(reads)) == ([0, 0, 0, prefix], [0, prefix, prefix, prefix])
    assert record.metrics is not None
    tok = record.metrics["tokens"]
    assert (tok["cache_creation_input_tokens"], tok["cache_read_input_tokens"]) == (
        prefix,
        3 * prefix,
    )
    share = 3 * prefix / (tok["input_tokens"] + 4 * prefix)
    assert record.metrics["cache_share"] == pytest.approx(share, abs=1e-4)
    assert f"- Prompt cache: {share:.0%} of input served from cache" in markdown_report(record)


async def test_steps_with_the_same_context_but_their_own_instructions_share_the_context_prefix(
    fake: FakeAnthropic,
) -> None:
    spec = fan_out(2, context=["${inputs.doc}"])
    spec["steps"][0]["system"] = "Answer in French."
    spec["steps"][1]["system"] = "Answer in German."

    record = await run(fake, spec)

    shared_chars = len(f"{PREAMBLE}\n\n{DOC}")
    own = {"q0": len("Answer in French."), "q1": len("Answer in German.")}
    got = {
        sid: (
            (s.usage or {})["cache_read_input_tokens"],
            (s.usage or {})["cache_creation_input_tokens"],
        )
        for sid, s in record.steps.items()
    }
    first = min(got, key=lambda sid: got[sid][0])  # whichever was sent first
    second = "q1" if first == "q0" else "q0"
    # the first writes its whole prefix; the second reads the shared part, writes its tail
    assert got == {
        first: (0, tokens(shared_chars + own[first])),
        second: (tokens(shared_chars), tokens(shared_chars + own[second]) - tokens(shared_chars)),
    }


async def test_a_prefix_below_the_models_minimum_or_with_cache_off_is_sent_as_plain_text(
    fake: FakeAnthropic,
) -> None:
    spec = fan_out(1, context=["A short note."])
    spec["steps"].append({"id": "off", "prompt": "x", "context": ["${inputs.doc}"], "cache": False})

    record = await run(fake, spec)

    assert record.status.value == "succeeded"
    assert sorted(b["system"] for b in fake.bodies) == sorted(
        [f"{PREAMBLE}\n\nA short note.", f"{PREAMBLE}\n\n{DOC}"]
    )
    assert record.metrics is not None
    assert record.metrics["tokens"]["cache_creation_input_tokens"] == 0


# -- structured outputs ----------------------------------------------------------------------
SCHEMA = {
    "type": "object",
    "properties": {"risk": {"enum": ["low", "high"]}, "clauses": {"type": "array"}},
    "required": ["risk", "clauses"],
    "additionalProperties": False,
}


async def test_a_json_step_with_a_schema_asks_for_structured_output_and_gets_a_parsed_value(
    fake: FakeAnthropic,
) -> None:
    fake.script(message('{"risk": "high", "clauses": [4, 9]}'))

    record = await run(fake, fan_out(1, output="json", json_schema=SCHEMA, thinking="standard"))

    assert record.steps["q0"].output == {"risk": "high", "clauses": [4, 9]}
    body = fake.bodies[0]
    assert body["output_config"] == {
        "effort": "medium",
        "format": {"type": "json_schema", "schema": SCHEMA},
    }
    assert body["system"] == f"{PREAMBLE}\n\n{JSON_HINT}"  # the API enforces the schema
    assert "tool_choice" not in body


async def test_without_structured_outputs_the_schema_goes_into_the_prompt_and_is_checked(
    fake: FakeAnthropic,
) -> None:
    models = ModelTable().with_overrides({"models": {MODEL: {"structured_outputs": False}}})
    fake.script(message('```json\n{"risk": "low", "clauses": []}\n```'))

    record = await run(fake, fan_out(1, output="json", json_schema=SCHEMA), models=models)

    assert record.steps["q0"].output == {"risk": "low", "clauses": []}
    body = fake.bodies[0]
    assert "output_config" not in body or "format" not in body["output_config"]
    assert body["system"] == (
        f"{PREAMBLE}\n\n{JSON_HINT}\n\n{SCHEMA_HINT}\n{json.dumps(SCHEMA, indent=1)}"
    )


async def test_an_answer_that_does_not_match_the_schema_fails_the_step_saying_where(
    fake: FakeAnthropic,
) -> None:
    fake.script(message('{"risk": "medium", "clauses": []}'))

    record = await run(fake, fan_out(1, output="json", json_schema=SCHEMA))

    step = record.steps["q0"]
    assert (step.status.value, step.failure["error_kind"]) == ("failed", "schema")
    assert step.error == (
        "output does not match the step's `json_schema` at risk: 'medium' is not one of "
        "['low', 'high']"
    )
    assert step.failure["usage"]["output_tokens"] == 5  # the call still counts


async def test_a_json_answer_cut_off_at_max_tokens_fails_the_step(fake: FakeAnthropic) -> None:
    fake.script(message('{"risk": "hi', stop_reason="max_tokens"))

    record = await run(fake, fan_out(1, output="json", max_tokens=50))

    step = record.steps["q0"]
    assert (step.status.value, step.error) == (
        "failed",
        "the answer was cut off at max_tokens (50) before the JSON answer was complete; "
        "raise the step's `max_tokens`",
    )


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (
            {"output": "json", "on_truncation": "accept"},
            "`on_truncation: accept` cannot apply to `output: json`: JSON cut off at "
            "max_tokens does not parse; raise `max_tokens` instead",
        ),
        (
            {"json_schema": {"type": "object"}},
            "`json_schema` needs `output: json`; add it, or drop the schema",
        ),
        (
            {"output": "json", "json_schema": {"type": "objekt"}},
            "`json_schema` is not a valid JSON Schema: 'objekt' is not valid under any of "
            "the given schemas (at type)",
        ),
        (
            {"argv": ["true"], "prompt": None, "context": ["a"]},
            "step 'q' runs on shell: `context` documents are for model steps (prompt, "
            "client, sampling)",
        ),
    ],
    ids=["json-accept", "schema-without-json", "bad-schema", "context-on-shell"],
)
def test_output_fields_that_cannot_work_are_refused_with_the_field_named(
    step: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"steps": [{"id": "q", "prompt": "p", **step}]})

    assert [(p.path, p.message) for p in caught.value.problems] == [("steps[0] (q)", problem)]


# -- stop reasons ----------------------------------------------------------------------------
async def test_a_paused_turn_is_continued_and_its_text_kept(fake: FakeAnthropic) -> None:
    fake.script(
        turn(text_block("The primes are 2, 3"), stop_reason="pause_turn"),
        message(", 5 and 7."),
    )

    record = await run(fake, fan_out(1))

    assert record.steps["q0"].output == "The primes are 2, 3, 5 and 7."
    assert [len(b["messages"]) for b in fake.bodies] == [1, 2]
    assert fake.bodies[1]["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "The primes are 2, 3"}],
    }


async def test_warm_order_holds_a_second_call_for_a_prefix_until_the_first_is_answered() -> None:
    order = WarmOrder()
    answered = anyio.Event()
    log: list[str] = []

    async def first() -> None:
        async with order.turn("prefix"):
            log.append("first sent")
            await answered.wait()
            log.append("first answered")

    async def second() -> None:
        async with order.turn("prefix"):
            log.append("second sent")

    async def other_prefix() -> None:
        async with order.turn("another"):
            log.append("other sent")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(second)
            tg.start_soon(other_prefix)
            await anyio.wait_all_tasks_blocked()
            assert log == ["first sent", "other sent"]
            answered.set()

    assert log == ["first sent", "other sent", "first answered", "second sent"]
