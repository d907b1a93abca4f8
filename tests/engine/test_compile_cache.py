"""A spec seen before is not parsed, compiled or planned again: runs of a saved workflow
and resumes reuse the compiled workflow and, while its history is unchanged, its plan."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import tutti_mcp.engine.service as service
from tutti_mcp.engine.errors import SpecError
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunStatus

pytestmark = pytest.mark.anyio

SPEC: dict[str, Any] = {
    "name": "greet",
    "inputs": {"who": {"type": "string", "default": "world"}},
    "steps": [
        {"id": "a", "op": "template", "args": "hello ${inputs.who}"},
        {"id": "b", "op": "template", "args": "${a.output}!"},
    ],
}


def _engine() -> Engine:
    return Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: BuiltinExecutor()})


def _count(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls = [0]
    real = getattr(service, name)

    def counting(*a: Any, **kw: Any) -> Any:
        calls[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(service, name, counting)
    return calls


async def test_a_spec_seen_before_is_compiled_once_and_its_runs_are_still_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiles = _count(monkeypatch, "compile_workflow")
    engine = _engine()
    with anyio.fail_after(5):
        first = await engine.run(SPEC, {"who": "Ada"})
        second = await engine.run(dict(SPEC), {"who": "Bob"})  # an equal spec, a new dict
    assert compiles == [1]
    assert (first.steps["b"].output, second.steps["b"].output) == ("hello Ada!", "hello Bob!")
    assert first.id != second.id

    changed = {**SPEC, "steps": [*SPEC["steps"], {"id": "c", "op": "pass", "value": 1}]}
    await engine.create(changed)
    assert compiles == [2]
    assert engine.compile(parse_spec(SPEC)) is engine.compile(parse_spec(SPEC))


async def test_a_spec_with_problems_is_refused_every_time_and_never_cached() -> None:
    engine = _engine()
    bad = {"name": "bad", "steps": [{"id": "a", "op": "template", "args": "${nope.output}"}]}
    for _ in range(2):
        with pytest.raises(SpecError, match="unknown step or name 'nope'"):
            engine.compile(bad)
    assert engine._compiled == {}


async def test_the_plan_is_reused_until_the_workflows_history_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plans = _count(monkeypatch, "make_plan")
    engine = _engine()
    wf = engine.compile(SPEC)
    with anyio.fail_after(5):
        p1, _ = await engine.plan_with_history(wf)
        p2, _ = await engine.plan_with_history(wf)
        assert (p1 is p2, plans) == (True, [1])
        run = await engine.run(SPEC)  # a finished run adds measured durations
        assert run.status is RunStatus.SUCCEEDED
        p3, history = await engine.plan_with_history(wf)
    assert history.durations()  # the history now has figures: the plan was made again
    assert p3 is not p1 and plans[0] >= 2
