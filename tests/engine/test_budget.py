"""Per-run token and cost budgets are stop conditions: once passed, no new step starts."""

from __future__ import annotations

import anyio
import pytest

from engine.engine import Engine
from engine.executors.base import StepCall, StepOutcome
from engine.spec import ExecutorKind
from memory.mem_store import InMemoryRunStore

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
