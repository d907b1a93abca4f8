"""The parts of a run's execution, each on its own: dispatch's caps and read-out, the
mapping of an attempt's exception to a StepError, how a run ends, and that the ledger is
the only part that writes to the store."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.errors import ConfigurationError, StepError, StepErrorKind, TemplateError
from tutti_mcp.engine.execution.attempts import step_error
from tutti_mcp.engine.execution.dispatch import Dispatch
from tutti_mcp.engine.execution.finish import resting_status
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunStatus

EXECUTION = Path(__file__).resolve().parents[2] / "engine" / "execution"
WRITES = {
    "create_run",
    "set_run",
    "set_step",
    "reset_steps",
    "commit_checkpoint",
    "add_steps",
    "note_step_started",
    "append_event",
    "record_history",
    "claim_run",
    "flush",
}


def _wide(n: int, run: str = "shell") -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": f"s{i}", "run": run, "argv": ["true"]} for i in range(n)]
    steps.append({"id": "b", "op": "pass", "value": 1})
    return {"name": "wide", "steps": steps}


def _dispatch(spec: dict[str, Any], cap: int, limits: dict[ExecutorKind, int]) -> Dispatch:
    wf = compile_workflow(parse_spec(spec))
    core = RunCore(wf, {})
    core.start()
    return Dispatch(core, wf.executors, cap, limits)


def test_dispatch_holds_steps_back_at_their_executors_cap_but_not_other_kinds() -> None:
    d = _dispatch(_wide(4), cap=10, limits={ExecutorKind.SHELL: 2})
    taken = []
    while (nxt := d.take()) is not None:
        taken.append(nxt[0])
    # two shell steps run; the other two wait behind the shell cap; the builtin step runs
    assert sorted(taken) == ["b", "s0", "s1"]
    stats = d.statistics()
    assert (stats.running, stats.running_by_executor) == (3, {"shell": 2, "builtin": 1})
    assert stats.queued_by_executor == {"shell": 2}
    assert stats.executor_caps == {"shell": 2}

    d.finished("s0")  # a shell slot frees: a held-back shell step takes it
    nxt = d.take()
    assert nxt is not None and nxt[0] == "s2"
    assert d.statistics().queued_by_executor == {"shell": 1}


def test_dispatch_never_exceeds_the_runs_cap_and_held_work_counts_as_running() -> None:
    d = _dispatch(_wide(5, run="builtin"), cap=2, limits={})
    assert [d.take() is not None for _ in range(3)] == [True, True, False]
    assert not d.has_room and not d.idle
    d.finished("s0")
    d.finished("s1")
    with d.held():
        assert d.statistics().running == 1 and not d.idle
    assert d.statistics().running == 0


@pytest.mark.parametrize(
    ("exc", "kind", "retryable", "says"),
    [
        (TimeoutError(), StepErrorKind.TIMEOUT, True, "timed out after 2s (attempt 3)"),
        (TemplateError("no such field"), StepErrorKind.TEMPLATE, False, "no such field"),
        (ConfigurationError("no model"), StepErrorKind.CONFIGURATION, False, "no model"),
        (KeyError("x"), StepErrorKind.EXCEPTION, True, "KeyError: 'x'"),
    ],
)
def test_an_attempts_exception_maps_to_a_step_error_of_its_kind(
    exc: Exception, kind: StepErrorKind, retryable: bool, says: str
) -> None:
    err = step_error(exc, 2.0, 3)
    assert (err.kind, err.retryable, str(err)) == (kind, retryable, says)


def test_a_step_error_passes_through_unchanged() -> None:
    err = StepError("exit 2", retryable=False)
    assert step_error(err, 1.0, 1) is err


def test_how_a_run_ends_follows_cancel_interrupt_done_stop_and_waiting_in_that_order() -> None:
    core = RunCore(compile_workflow(parse_spec(_wide(1, run="builtin"))), {})
    ends = [
        resting_status(core, cancel_requested=c, outer_cancel=o, waiting=w)
        for c, o, w in [(True, True, True), (False, True, True), (False, False, True)]
    ]
    assert ends == [
        (RunStatus.CANCELLED, "cancelled on request"),
        (RunStatus.INTERRUPTED, "the process running it stopped; resume to continue"),
        (RunStatus.WAITING, None),
    ]
    core.stop("cost budget exceeded")
    assert resting_status(core, cancel_requested=False, outer_cancel=False, waiting=True) == (
        RunStatus.FAILED,
        "cost budget exceeded",
    )
    assert resting_status(core, cancel_requested=False, outer_cancel=False, waiting=False)[1] == (
        "cost budget exceeded"
    )


def test_only_the_ledger_writes_to_the_store_during_an_execution() -> None:
    writers = {}
    for path in sorted(EXECUTION.glob("*.py")):
        calls = {
            node.func.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITES
            and "store" in ast.unparse(node.func.value)
        }
        if calls:
            writers[path.name] = calls
    assert set(writers) == {"ledger.py"}
    assert {"commit_checkpoint", "set_step", "set_run"} <= writers["ledger.py"]


class _Recorder:
    """Builtin steps that record how many run at once."""

    def __init__(self, gate: anyio.Event) -> None:
        self.gate = gate
        self.now = self.peak = 0
        self.two_running = anyio.Event()
        self.builtin = BuiltinExecutor()

    async def execute(self, call: StepCall) -> StepOutcome:
        self.now += 1
        self.peak = max(self.peak, self.now)
        if self.now == 2:
            self.two_running.set()
        try:
            if call.step.id.startswith("s"):
                await self.gate.wait()
            return await self.builtin.execute(call)
        finally:
            self.now -= 1


@pytest.mark.anyio
async def test_a_live_runs_statistics_show_what_runs_and_what_waits_for_a_slot() -> None:
    gate = anyio.Event()
    rec = _Recorder(gate)
    engine = Engine(
        InMemoryRunStore(),
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.SHELL: rec},
        EngineConfig(executor_limits={ExecutorKind.SHELL: 2}),
    )
    prepared = await engine.create(_wide(5))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.execute, prepared)
            await rec.two_running.wait()
            stats = engine.live[prepared.run_id].statistics()
            assert stats.running_by_executor == {"shell": 2}
            assert stats.queued_by_executor == {"shell": 3}
            gate.set()
    assert rec.peak == 2
    assert (await engine.load(prepared.run_id)).status is RunStatus.SUCCEEDED


class _TaskRecorder:
    """Builtin steps that note which task ran them; steps named `slow*` declare no bound
    (they may take a while) and wait until all of them have started."""

    def __init__(self, slow: int) -> None:
        self.tasks: set[int] = set()
        self.slow_started = 0
        self.slow_total = slow
        self.all_slow = anyio.Event()
        self.builtin = BuiltinExecutor()

    def max_duration(self, step: Any) -> float | None:
        return None if step.id.startswith("slow") else 0.001

    async def execute(self, call: StepCall) -> StepOutcome:
        import asyncio

        self.tasks.add(id(asyncio.current_task()))
        if call.step.id.startswith("slow"):
            self.slow_started += 1
            if self.slow_started == self.slow_total:
                self.all_slow.set()
            await self.all_slow.wait()  # only if every slow step runs at once
        return await self.builtin.execute(call)


@pytest.mark.anyio
async def test_quick_steps_of_a_fan_out_share_a_few_tasks_and_slow_ones_get_their_own() -> None:
    from tutti_mcp.engine.execution.runner import QUICK_WORKERS

    quick = _TaskRecorder(slow=0)
    spec = {
        "name": "fan",
        "max_concurrency": 1024,
        "steps": [{"id": f"q{i}", "op": "pass", "value": i} for i in range(200)],
    }
    engine = Engine(
        InMemoryRunStore(), {ExecutorKind.BUILTIN: quick}, EngineConfig(max_concurrency=1024)
    )
    with anyio.fail_after(10):
        run = await engine.run(spec)
    assert run.status is RunStatus.SUCCEEDED
    assert 1 <= len(quick.tasks) <= QUICK_WORKERS

    n = QUICK_WORKERS * 3
    slow = _TaskRecorder(slow=n)
    spec = {
        "name": "slow",
        "max_concurrency": 1024,
        "steps": [{"id": f"slow{i}", "op": "pass", "value": i} for i in range(n)],
    }
    engine = Engine(
        InMemoryRunStore(), {ExecutorKind.BUILTIN: slow}, EngineConfig(max_concurrency=1024)
    )
    with anyio.fail_after(10):  # would hang if slow steps queued behind each other
        run = await engine.run(spec)
    assert run.status is RunStatus.SUCCEEDED
    assert len(slow.tasks) == n
