"""Scheduler properties over random DAGs: every step runs once, never before its
dependencies, and never more steps at once than the concurrency cap."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None)

Trace = list[tuple[str, str | None]]


@st.composite
def random_dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1..40 steps; edges only from lower to higher index, so the graph is acyclic; each
    step a tiny `wait` (0-3 ms) or a `pass`."""
    n = draw(st.integers(min_value=1, max_value=40))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=min(i, 5))) if i else []
        step: dict[str, Any] = {"id": f"s{i}", "depends_on": [f"s{d}" for d in sorted(deps)]}
        if draw(st.booleans()):
            step |= {"op": "wait", "value": draw(st.integers(0, 3)) / 1000}
        else:
            step["op"] = "pass"
        steps.append(step)
    return steps


def run_traced(spec: dict[str, Any]) -> tuple[RunRecord, Trace]:
    trace: Trace = []

    async def main() -> RunRecord:
        engine = Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: BuiltinExecutor()})
        with anyio.fail_after(10):
            return await engine.run(spec, on_event=lambda kind, sid, _: trace.append((kind, sid)))

    return anyio.run(main), trace


def step_events(trace: Trace, kind: str) -> list[str]:
    return [sid for k, sid in trace if k == kind and sid is not None]


@PROPERTY_SETTINGS
@given(random_dags())
def test_every_step_runs_once_and_only_after_all_its_dependencies_succeeded(
    steps: list[dict[str, Any]],
) -> None:
    run, trace = run_traced({"steps": steps})

    started = step_events(trace, "step_started")
    succeeded = step_events(trace, "step_succeeded")
    ids = [s["id"] for s in steps]
    assert sorted(started) == sorted(ids)
    assert sorted(succeeded) == sorted(ids)
    position = {(kind, sid): i for i, (kind, sid) in enumerate(trace)}
    for step in steps:
        for dep in step["depends_on"]:
            assert position[("step_succeeded", dep)] < position[("step_started", step["id"])]
    assert run.status.value == "succeeded"
    assert {sid: rec.status.value for sid, rec in run.steps.items()} == dict.fromkeys(
        ids, "succeeded"
    )
    assert {sid: rec.attempts for sid, rec in run.steps.items()} == dict.fromkeys(ids, 1)


@PROPERTY_SETTINGS
@given(random_dags(), st.integers(min_value=1, max_value=4))
def test_simultaneously_running_steps_never_exceed_the_concurrency_cap(
    steps: list[dict[str, Any]], cap: int
) -> None:
    run, trace = run_traced({"steps": steps, "max_concurrency": cap})

    running = peak = 0
    for kind, _ in trace:
        if kind == "step_started":
            running += 1
            peak = max(peak, running)
        elif kind in ("step_succeeded", "step_failed"):
            running -= 1
    assert running == 0
    assert 1 <= peak <= cap
    assert run.status.value == "succeeded"


@PROPERTY_SETTINGS
@given(random_dags())
def test_without_parallelism_steps_run_one_at_a_time_in_a_topological_order(
    steps: list[dict[str, Any]],
) -> None:
    run, trace = run_traced({"steps": steps, "optimization": {"parallel_where_possible": False}})

    kinds = [k for k, _ in trace if k in ("step_started", "step_succeeded")]
    assert kinds == ["step_started", "step_succeeded"] * len(steps)
    order = step_events(trace, "step_started")
    for step in steps:
        assert all(order.index(d) < order.index(step["id"]) for d in step["depends_on"])
    assert run.status.value == "succeeded"


class GatedExecutor:
    """Steps named in `gates` wait for their gate; the others finish at once."""

    def __init__(self, gates: dict[str, anyio.Event]) -> None:
        self.gates = gates

    async def execute(self, call: StepCall) -> StepOutcome:
        gate = self.gates.get(call.step.id)
        if gate is not None:
            await gate.wait()
        return StepOutcome(call.step.id)


@pytest.mark.anyio
async def test_a_step_starts_when_its_own_dependencies_finish_without_waiting_for_a_layer() -> None:
    # `fast_child` is in the second layer; `slow` in the first is still running when it
    # starts. A layer-barrier scheduler would deadlock here: `slow` waits for `fast_child`.
    release_slow = anyio.Event()
    engine = Engine(
        InMemoryRunStore(), {ExecutorKind.BUILTIN: GatedExecutor({"slow": release_slow})}
    )
    seen: Trace = []

    def on_event(kind: str, sid: str | None, _: dict[str, Any]) -> None:
        seen.append((kind, sid))
        if (kind, sid) == ("step_succeeded", "fast_child"):
            release_slow.set()

    spec = {
        "steps": [
            {"id": "slow"},
            {"id": "fast"},
            {"id": "fast_child", "depends_on": ["fast"]},
            {"id": "join", "depends_on": ["slow", "fast_child"]},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec, on_event=on_event)
    assert run.status.value == "succeeded"
    assert seen.index(("step_started", "fast_child")) < seen.index(("step_succeeded", "slow"))


@pytest.mark.anyio
async def test_ready_steps_on_the_longest_path_start_first_under_a_cap_of_one() -> None:
    engine = Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: BuiltinExecutor()})
    seen: Trace = []
    spec = {
        "max_concurrency": 1,
        "steps": [
            {"id": "short", "estimate_s": 1},
            {"id": "long_head", "estimate_s": 1},
            {"id": "long_tail", "depends_on": ["long_head"], "estimate_s": 5},
        ],
    }
    with anyio.fail_after(5):
        await engine.run(spec, on_event=lambda k, s, _: seen.append((k, s)))
    assert step_events(seen, "step_started") == ["long_head", "long_tail", "short"]


class FailingExecutor:
    async def execute(self, call: StepCall) -> StepOutcome:
        raise StepError(f"{call.step.id} failed", retryable=False)


@PROPERTY_SETTINGS
@given(random_dags())
def test_when_every_step_is_optional_and_fails_each_root_fails_and_the_rest_are_skipped(
    steps: list[dict[str, Any]],
) -> None:
    optional = [{**s, "on_failure": "continue"} for s in steps]

    async def main() -> RunRecord:
        engine = Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: FailingExecutor()})
        with anyio.fail_after(10):
            return await engine.run({"steps": optional})

    run = anyio.run(main)
    assert run.status.value == "succeeded"
    assert {sid: rec.status.value for sid, rec in run.steps.items()} == {
        s["id"]: "skipped" if s["depends_on"] else "failed" for s in steps
    }


class TinySleepExecutor:
    """Stands in for the shell executor: sleeps the step's `value` seconds."""

    async def execute(self, call: StepCall) -> StepOutcome:
        await anyio.sleep(float(call.step.value or 0))
        return StepOutcome(call.step.id)


@PROPERTY_SETTINGS
@given(random_dags(), st.integers(min_value=1, max_value=3), st.data())
def test_steps_of_a_capped_executor_never_exceed_their_executor_limit(
    steps: list[dict[str, Any]], shell_limit: int, data: st.DataObject
) -> None:
    shell_ids = {
        s["id"] for s in steps if data.draw(st.booleans(), label=f"{s['id']} runs on shell")
    }
    spec_steps = [
        {
            "id": s["id"],
            "depends_on": s["depends_on"],
            "run": "shell",
            "argv": ["x"],
            "value": 0.001,
        }
        if s["id"] in shell_ids
        else s
        for s in steps
    ]
    trace: Trace = []

    async def main() -> RunRecord:
        engine = Engine(
            InMemoryRunStore(),
            {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.SHELL: TinySleepExecutor()},
            EngineConfig(executor_limits={ExecutorKind.SHELL: shell_limit}),
        )
        with anyio.fail_after(10):
            return await engine.run(
                {"steps": spec_steps}, on_event=lambda kind, sid, _: trace.append((kind, sid))
            )

    run = anyio.run(main)
    running = peak = 0
    for kind, sid in trace:
        if sid in shell_ids and kind == "step_started":
            running += 1
            peak = max(peak, running)
        elif sid in shell_ids and kind == "step_succeeded":
            running -= 1
    assert peak <= shell_limit
    assert run.status.value == "succeeded"
    assert sorted(step_events(trace, "step_started")) == sorted(s["id"] for s in steps)


@PROPERTY_SETTINGS
@given(random_dags(), st.data())
def test_skips_propagate_to_dependents_except_through_trigger_all_done(
    steps: list[dict[str, Any]], data: st.DataObject
) -> None:
    false_when = {s["id"] for s in steps if data.draw(st.booleans(), label=f"{s['id']} false")}
    all_done = {s["id"] for s in steps if data.draw(st.booleans(), label=f"{s['id']} all_done")}
    spec_steps = [
        {
            **s,
            **({"when": "false"} if s["id"] in false_when else {}),
            **({"trigger": "all_done"} if s["id"] in all_done else {}),
        }
        for s in steps
    ]
    expected: dict[str, str] = {}
    for s in steps:
        blocked = s["id"] not in all_done and any(expected[d] == "skipped" for d in s["depends_on"])
        expected[s["id"]] = "skipped" if s["id"] in false_when or blocked else "succeeded"

    run, trace = run_traced({"steps": spec_steps})

    assert run.status.value == "succeeded"
    assert {sid: rec.status.value for sid, rec in run.steps.items()} == expected
    assert sorted(step_events(trace, "step_started")) == sorted(
        sid for sid, st_ in expected.items() if st_ == "succeeded"
    )


class FailFirstCall:
    """Builtin steps, except that steps in `failing` fail their first call."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = set(failing)
        self.calls: list[str] = []
        self.succeeded: list[str] = []
        self._builtin = BuiltinExecutor()

    async def execute(self, call: StepCall) -> StepOutcome:
        sid = call.step.id
        self.calls.append(sid)
        if sid in self.failing:
            self.failing.discard(sid)
            raise StepError(f"{sid} failed once")
        outcome = await self._builtin.execute(call)
        self.succeeded.append(sid)
        return outcome


@PROPERTY_SETTINGS
@given(random_dags(), st.data())
def test_resuming_failed_runs_never_reruns_a_committed_step(
    steps: list[dict[str, Any]], data: st.DataObject
) -> None:
    failing = {s["id"] for s in steps if data.draw(st.booleans(), label=f"{s['id']} fails")}
    executor = FailFirstCall(failing)

    async def main() -> RunRecord:
        engine = Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: executor})
        with anyio.fail_after(20):
            run = await engine.run({"steps": steps})
            for _ in range(len(steps)):
                if run.status.value == "succeeded":
                    break
                assert run.status.value == "failed"
                committed = {sid for sid, rec in run.steps.items() if rec.seq is not None}
                before = len(executor.calls)
                run = await engine.resume(run.id)
                assert committed.isdisjoint(executor.calls[before:])
        return run

    run = anyio.run(main)
    ids = [s["id"] for s in steps]
    assert run.status.value == "succeeded"
    assert sorted(executor.succeeded) == sorted(ids)
    assert {sid: rec.attempts for sid, rec in run.steps.items()} == {
        sid: 2 if sid in failing else 1 for sid in ids
    }
