"""Per-run token and cost budgets are stop conditions: once passed, no new step starts; a
cost budget refuses, before the run, a step on a model whose cost it could not count."""

from __future__ import annotations

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.executors.base import StepCall, StepExecutor, StepOutcome
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore

pytestmark = pytest.mark.anyio


class Metered:
    """Each step reports 600 tokens costing $0.25."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def execute(self, call: StepCall) -> StepOutcome:
        self.ran.append(call.step.id)
        return StepOutcome(
            call.step.id, usage={"input_tokens": 500, "output_tokens": 100}, cost_usd=0.25
        )


def chain(budget: dict[str, float]) -> dict[str, object]:
    steps = [
        {"id": f"s{i}", "args": "x", "depends_on": [f"s{i - 1}"] if i else []} for i in range(4)
    ]
    return {"budget": budget, "steps": steps}


@pytest.mark.parametrize(
    ("budget", "error"),
    [
        ({"max_tokens": 1500}, "token budget exceeded: 1800 > 1500"),
        ({"max_cost_usd": 0.6}, "cost budget exceeded: $0.7500 > $0.6"),
    ],
)
async def test_a_run_stops_starting_steps_once_its_budget_is_passed(
    budget: dict[str, float], error: str
) -> None:
    metered = Metered()
    engine = Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: metered})
    with anyio.fail_after(5):
        run = await engine.run(chain(budget))
    assert (run.status.value, run.error, metered.ran) == ("failed", error, ["s0", "s1", "s2"])
    assert {s: r.status.value for s, r in run.steps.items()} == {
        "s0": "succeeded",
        "s1": "succeeded",
        "s2": "succeeded",
        "s3": "pending",
    }
    assert run.metrics is not None
    assert (run.metrics["tokens"]["input_tokens"], run.metrics["cost_usd"]) == (1500, 0.75)


# -- a cost budget needs a price for every step on the API ------------------------------------
def priced(**budget: object) -> dict[str, object]:
    return {
        "budget": budget,
        "steps": [
            {"id": "known", "prompt": "hi", "model": "haiku"},
            {"id": "fresh", "prompt": "hi", "model": "claude-haiku-5-5"},  # no published price
            {"id": "mine", "prompt": "hi", "model": "claude-mythos-5-2", "run": "client"},
        ],
    }


def on_the_api() -> tuple[Engine, Metered]:
    metered = Metered()
    executors: dict[ExecutorKind, StepExecutor] = {
        ExecutorKind.PROMPT: metered,
        ExecutorKind.CLIENT: ClientExecutor(),
    }
    return Engine(InMemoryRunStore(), executors), metered


async def test_a_cost_budget_refuses_a_step_on_a_model_without_a_price_before_anything_runs() -> (
    None
):
    engine, metered = on_the_api()
    with anyio.fail_after(5), pytest.raises(ConfigurationError) as info:
        await engine.run(priced(max_cost_usd=1.0))
    assert str(info.value) == (
        "cannot run this workflow:\n"
        "  - budget.max_cost_usd is 1, but the cost of step 'fresh' (claude-haiku-5-5) cannot "
        "be counted: that model has no known price. Give the prices in the TUTTI_MODELS file "
        "(`models: {ID: {prices: {input: ..., output: ...}}}`, USD per million tokens), choose "
        "a priced model (`tutti models` lists prices), or set `budget.allow_unpriced: true` to "
        "run without counting it"
    )
    assert metered.ran == []


@pytest.mark.parametrize(
    "budget", [{"max_cost_usd": 1.0, "allow_unpriced": True}, {"max_tokens": 10_000}, {}]
)
async def test_unpriced_models_run_when_allowed_or_when_no_cost_budget_is_set(
    budget: dict[str, object],
) -> None:
    engine, metered = on_the_api()
    with anyio.fail_after(5):
        run = await engine.run(priced(**budget))
    assert sorted(metered.ran) == ["fresh", "known"]  # `mine` waits for the client
    assert run.status.value == "waiting"


async def test_a_priced_model_given_in_the_overrides_satisfies_the_budget() -> None:
    models = ModelTable().with_overrides(
        {"models": {"claude-haiku-5-5": {"prices": {"input": 1, "output": 5}}}}
    )
    engine, metered = on_the_api()
    engine.config = EngineConfig(models=models)
    with anyio.fail_after(5):
        await engine.run(priced(max_cost_usd=5.0))
    assert sorted(metered.ran) == ["fresh", "known"]
