"""Scripted agents for swarm tests: the fake Messages API answers each request by the agent
that sends it (its system prompt says "You are NAME") and the kind of turn (its request)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic, Reply, error, estimated, message
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.prompt import PromptExecutor
from tutti_mcp.engine.executors.shell_policy import ShellPolicy
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.toolbox.bash import ShellAccess
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord

# what the seed's agents' `/bash security-scan` and `/bash profiler` need, as
# TUTTI_ALLOW_SHELL=security-scan,profiler gives it (no test here runs them)
SEED_SHELL = ShellAccess(ShellPolicy({"security-scan", "profiler"}))
PHASES = {
    "Decompose the task": "plan",
    "Your subtask from the coordinator": "work",
    "Synthesise them": "synthesis",
    "Give your answer to the task": "draft",
    "Revise yours": "draft",
    "The hub broadcasts": "answer",
    "Aggregate them": "aggregate",
    "You are first in the line": "refine",
    "The previous agent": "refine",
    "Cast your ballot": "ballot",
    "As coordinator you decide": "decide",
    "Write the final result": "final",
}
Answer = Callable[[str, str, str], Any]  # (agent, phase, prompt) -> output, or a Reply


def text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(b.get("text", "") for b in value if isinstance(b, dict))


def who(body: dict[str, Any]) -> tuple[str, str, str]:
    system = text_of(body.get("system", ""))
    m = re.search(r"You are (\w+), one of", system)
    agent = m.group(1) if m else "caller"
    prompt = text_of(body["messages"][0]["content"])
    phase = next((p for k, p in PHASES.items() if k in prompt), "?")
    return agent, phase, f"{system}\n\n{prompt}"  # what the agent is told, all of it


class Agents:
    """Answers by (agent, phase); records who was asked what, in order."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def __call__(self, body: Any) -> Reply | None:
        agent, phase, prompt = who(body)
        self.asked.append((agent, phase))
        out = self.answer(agent, phase, prompt)
        if isinstance(out, Reply):
            return out
        text = out if isinstance(out, str) else json.dumps(out)
        return estimated(text, output_tokens=5)


def fails() -> Reply:
    return error(500, "scripted failure")


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(default=message("?")).start()
    try:
        yield fake
    finally:
        fake.stop()


async def run_swarm(
    fake: FakeAnthropic,
    spec: dict[str, Any],
    answer: Answer,
    *,
    inputs: dict[str, Any] | None = None,
    store: InMemoryRunStore | None = None,
    extra: dict[ExecutorKind, Any] | None = None,
) -> tuple[RunRecord, Agents]:
    agents = Agents(answer)
    fake.responder = agents
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake.base_url, max_retries=0
    ) as client:
        engine = Engine(
            store or InMemoryRunStore(),
            {
                ExecutorKind.PROMPT: PromptExecutor(client, ModelTable(), shell=SEED_SHELL),
                **(extra or {}),
            },
            EngineConfig(rand=lambda: 0.0, models=ModelTable()),
        )
        with anyio.fail_after(20):
            given = {"task": "Review the service."} if inputs is None else inputs
            run = await engine.run(spec, inputs=given)
    return run, agents
