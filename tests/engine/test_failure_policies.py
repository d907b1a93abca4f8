"""Failure handling: retries, the four failure policies, timeouts, cancellation, resume."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.report import recovery_plan
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord

pytestmark = pytest.mark.anyio

BAD_JSON = {"op": "parse_json", "args": "{not json"}  # fails, and is not retryable
BAD_JSON_ERROR = (
    "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
)


class ScriptedExecutor:
    """Builtin steps, except that steps named in `fails` raise a retryable StepError on
    their first N calls, and steps named in `gates` wait for their gate first."""

    def __init__(
        self, fails: dict[str, int] | None = None, gates: dict[str, anyio.Event] | None = None
    ) -> None:
        self.fails = dict(fails or {})
        self.gates = gates or {}
        self.calls: list[tuple[str, int]] = []
        self._builtin = BuiltinExecutor()

    async def execute(self, call: StepCall) -> StepOutcome:
        self.calls.append((call.step.id, call.attempt))
        gate = self.gates.get(call.step.id)
        if gate is not None:
            await gate.wait()
        if self.fails.get(call.step.id, 0) > 0:
            self.fails[call.step.id] -= 1
            raise StepError(f"{call.step.id} broke on attempt {call.attempt}")
        return await self._builtin.execute(call)


def make_engine(
    executor: Any = None, *, kind: ExecutorKind = ExecutorKind.BUILTIN
) -> tuple[Engine, InMemoryRunStore]:
    store = InMemoryRunStore()
    executors: dict[ExecutorKind, Any] = {ExecutorKind.BUILTIN: BuiltinExecutor()}
    if executor is not None:
        executors[kind] = executor
    return Engine(store, executors, EngineConfig(rand=lambda: 0.5)), store


def statuses(run: RunRecord) -> dict[str, str]:
    return {sid: rec.status.value for sid, rec in run.steps.items()}


def outputs(run: RunRecord) -> dict[str, Any]:
    return {sid: rec.output for sid, rec in run.steps.items()}


# -- retries -----------------------------------------------------------------------------


async def test_a_flaky_step_succeeds_on_its_third_attempt_and_records_three_attempts() -> None:
    flaky = ScriptedExecutor(fails={"fetch": 2})
    engine, _ = make_engine(flaky)
    events: list[tuple[str, str | None, dict[str, Any]]] = []
    spec = {
        "steps": [
            {"id": "fetch", "args": "data", "retry": {"attempts": 3, "backoff_s": 0}},
            {"id": "use", "args": "got ${fetch.output}"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec, on_event=lambda k, s, d: events.append((k, s, d)))

    assert (run.status.value, statuses(run), outputs(run)) == (
        "succeeded",
        {"fetch": "succeeded", "use": "succeeded"},
        {"fetch": "data", "use": "got data"},
    )
    assert (run.steps["fetch"].attempts, run.steps["use"].attempts) == (3, 1)
    assert flaky.calls == [("fetch", 1), ("fetch", 2), ("fetch", 3), ("use", 1)]
    assert [(k, d) for k, s, d in events if s == "fetch"] == [
        ("step_started", {"attempt": 1}),
        ("step_retrying", {"attempt": 1, "error": "fetch broke on attempt 1", "delay_s": 0.0}),
        ("step_started", {"attempt": 2}),
        ("step_retrying", {"attempt": 2, "error": "fetch broke on attempt 2", "delay_s": 0.0}),
        ("step_started", {"attempt": 3}),
        ("step_succeeded", {"attempts": 3}),
    ]


async def test_a_shell_kind_executor_is_retried_the_same_way() -> None:
    flaky = ScriptedExecutor(fails={"sh": 2})
    engine, _ = make_engine(flaky, kind=ExecutorKind.SHELL)
    spec = {
        "steps": [
            {"id": "sh", "run": "shell", "argv": ["true"], "retry": {"attempts": 3, "backoff_s": 0}}
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert (run.status.value, run.steps["sh"].attempts, run.steps["sh"].executor) == (
        "succeeded",
        3,
        "shell",
    )


async def test_when_retries_run_out_the_step_fails_with_every_error_in_its_detail() -> None:
    engine, _ = make_engine(ScriptedExecutor(fails={"fetch": 5}))
    spec = {"steps": [{"id": "fetch", "args": "x", "retry": {"attempts": 3, "backoff_s": 0}}]}
    with anyio.fail_after(5):
        run = await engine.run(spec)
    rec = run.steps["fetch"]
    assert (run.status.value, run.error, rec.status.value, rec.attempts, rec.error, rec.detail) == (
        "failed",
        "step 'fetch' failed",
        "failed",
        3,
        "fetch broke on attempt 3",
        {
            "error_kind": "error",
            "retryable": True,
            "attempts": 3,
            "errors": [
                "fetch broke on attempt 1",
                "fetch broke on attempt 2",
                "fetch broke on attempt 3",
            ],
            "policy": "fail",
            "action": "stop_run",
        },
    )


async def test_a_non_retryable_error_is_not_retried() -> None:
    engine, _ = make_engine()
    spec = {"steps": [{"id": "parse", **BAD_JSON, "retry": {"attempts": 5, "backoff_s": 0}}]}
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert (run.steps["parse"].attempts, run.steps["parse"].error) == (1, BAD_JSON_ERROR)


# -- policy fail -------------------------------------------------------------------------


async def test_policy_fail_fails_the_run_and_keeps_partial_results_and_a_recovery_plan() -> None:
    # `side` is running when `bad` fails: it may finish, but nothing new starts.
    side_gate = anyio.Event()
    engine, _ = make_engine(ScriptedExecutor(gates={"side": side_gate}))

    def on_event(kind: str, sid: str | None, _: dict[str, Any]) -> None:
        if (kind, sid) == ("step_failed", "bad"):
            side_gate.set()

    spec = {
        "steps": [
            {"id": "ok1", "args": "fine"},
            {"id": "side", "args": "side done"},
            {"id": "bad", **BAD_JSON, "depends_on": ["ok1"]},
            {"id": "after", "args": "${bad.output}"},
            {"id": "after_side", "args": "${side.output}"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec, on_event=on_event)

    assert (run.status.value, run.error, statuses(run)) == (
        "failed",
        "step 'bad' failed",
        {
            "ok1": "succeeded",
            "side": "succeeded",
            "bad": "failed",
            "after": "pending",
            "after_side": "pending",
        },
    )
    assert outputs(run) == {
        "ok1": "fine",
        "side": "side done",
        "bad": None,
        "after": None,
        "after_side": None,
    }
    assert (run.steps["bad"].error, run.steps["bad"].detail) == (
        BAD_JSON_ERROR,
        {
            "error_kind": "parse",
            "retryable": False,
            "attempts": 1,
            "errors": [BAD_JSON_ERROR],
            "policy": "fail",
            "action": "stop_run",
        },
    )
    assert recovery_plan(run) == {
        "failures": {
            "bad": {
                "error": BAD_JSON_ERROR,
                "attempts": 1,
                "kind": "parse",
                "retryable": False,
                "hint": "the step's template or output shape is wrong: "
                "fix the spec and start a new run",
            }
        },
        "resume": {
            "keeps_committed": ["ok1", "side"],
            "reruns": ["bad"],
            "then_runs": ["after", "after_side"],
            "waiting_for_client": [],
        },
        "command": f"tutti resume {run.id}",
    }
    assert run.metrics is not None and run.metrics["partial"] is False


async def test_a_succeeded_run_has_no_recovery_plan() -> None:
    engine, _ = make_engine()
    with anyio.fail_after(5):
        run = await engine.run({"steps": [{"id": "a", "args": "x"}]})
    assert recovery_plan(run) is None


# -- policy continue ---------------------------------------------------------------------


async def test_policy_continue_skips_dependents_and_the_run_succeeds_as_partial() -> None:
    engine, _ = make_engine()
    spec = {
        "steps": [
            {"id": "optional", **BAD_JSON, "on_failure": "continue"},
            {"id": "uses_it", "args": "${optional.output}"},
            {"id": "uses_that", "depends_on": ["uses_it"], "args": "x"},
            {"id": "other", "args": "other"},
            {
                "id": "anyway",
                "depends_on": ["optional"],
                "trigger": "all_done",
                "args": "${optional.status}",
            },
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)

    assert (run.status.value, statuses(run)) == (
        "succeeded",
        {
            "optional": "failed",
            "uses_it": "skipped",
            "uses_that": "skipped",
            "other": "succeeded",
            "anyway": "succeeded",
        },
    )
    assert {sid: run.steps[sid].detail for sid in ("uses_it", "uses_that")} == {
        "uses_it": {"reason": "dependency 'optional' failed"},
        "uses_that": {"reason": "dependency 'uses_it' was skipped"},
    }
    assert run.steps["anyway"].output == "failed"
    assert run.steps["optional"].detail is not None
    assert run.steps["optional"].failure["action"] == "skip_dependents"
    assert run.metrics is not None
    assert (run.metrics["partial"], run.metrics["status_counts"]) == (
        True,
        {"failed": 1, "skipped": 2, "succeeded": 2},
    )


# -- policy fallback ---------------------------------------------------------------------


async def test_policy_fallback_runs_the_fallback_and_dependents_read_it_as_the_primary() -> None:
    engine, _ = make_engine()
    spec = {
        "steps": [
            {"id": "primary", **BAD_JSON, "on_failure": "fallback", "fallback": "backup"},
            {"id": "backup", "op": "json", "value": {"source": "backup"}},
            {"id": "user", "args": "got ${primary.output.source} (${primary.status})"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)

    assert (run.status.value, statuses(run), outputs(run)) == (
        "succeeded",
        {"primary": "failed", "backup": "succeeded", "user": "succeeded"},
        {"primary": None, "backup": {"source": "backup"}, "user": "got backup (failed)"},
    )
    assert run.steps["primary"].detail is not None
    assert run.steps["primary"].failure["action"] == "run_fallback"


async def test_a_fallback_that_is_not_needed_is_marked_skipped() -> None:
    engine, _ = make_engine()
    spec = {
        "steps": [
            {
                "id": "primary",
                "op": "parse_json",
                "args": "[1]",
                "on_failure": "fallback",
                "fallback": "backup",
            },
            {"id": "backup", "args": "from backup"},
            {"id": "user", "args": "got ${primary.output}"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)

    assert (run.status.value, statuses(run), outputs(run)) == (
        "succeeded",
        {"primary": "succeeded", "backup": "skipped", "user": "succeeded"},
        {"primary": [1], "backup": None, "user": "got [1]"},
    )
    assert run.steps["backup"].detail == {"reason": "fallback not needed"}


async def test_when_the_fallback_fails_too_the_run_fails_naming_both() -> None:
    engine, _ = make_engine()
    spec = {
        "steps": [
            {"id": "primary", **BAD_JSON, "on_failure": "fallback", "fallback": "backup"},
            {"id": "backup", **BAD_JSON},
            {"id": "user", "args": "${primary.output}"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert (run.status.value, run.error, statuses(run)) == (
        "failed",
        "step 'primary' failed and so did its fallback 'backup'",
        {"primary": "failed", "backup": "failed", "user": "pending"},
    )


# -- policy degrade ----------------------------------------------------------------------


async def test_policy_degrade_uses_the_default_and_marks_the_run_partial() -> None:
    engine, _ = make_engine()
    spec = {
        "steps": [
            {"id": "count", **BAD_JSON, "on_failure": "degrade", "default": {"n": 0}},
            {"id": "report", "args": "n=${count.output.n} (${count.status})"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)

    assert (run.status.value, statuses(run), outputs(run)) == (
        "succeeded",
        {"count": "degraded", "report": "succeeded"},
        {"count": {"n": 0}, "report": "n=0 (degraded)"},
    )
    assert (run.steps["count"].error, run.steps["count"].seq) == (BAD_JSON_ERROR, 1)
    assert run.metrics is not None and run.metrics["partial"] is True


# -- timeouts ----------------------------------------------------------------------------


async def test_a_step_over_its_timeout_fails_quickly_with_a_timeout_error() -> None:
    engine, _ = make_engine()
    spec = {"steps": [{"id": "slow", "op": "wait", "value": 5, "timeout": 0.2}]}
    with anyio.fail_after(3):
        run = await engine.run(spec)

    rec = run.steps["slow"]
    assert (run.status.value, rec.status.value, rec.error, rec.detail) == (
        "failed",
        "failed",
        "timed out after 0.2s (attempt 1)",
        {
            "error_kind": "timeout",
            "retryable": True,
            "attempts": 1,
            "errors": ["timed out after 0.2s (attempt 1)"],
            "policy": "fail",
            "action": "stop_run",
        },
    )
    plan = recovery_plan(run)
    assert plan is not None
    assert plan["failures"]["slow"]["hint"] == (
        "raise the step's `timeout` or make it do less, then resume"
    )


# -- cancellation ------------------------------------------------------------------------


async def test_cancelling_a_run_records_the_run_and_its_running_step_cancelled() -> None:
    engine, _ = make_engine()
    run_id = await engine.create_run(
        {
            "steps": [
                {"id": "quick", "args": "q"},
                {"id": "long", "op": "wait", "value": 30, "depends_on": ["quick"]},
                {"id": "later", "args": "l", "depends_on": ["long"]},
            ]
        }
    )
    long_started = anyio.Event()
    result: list[RunRecord] = []

    def on_event(kind: str, sid: str | None, _: dict[str, Any]) -> None:
        if (kind, sid) == ("step_started", "long"):
            long_started.set()

    async def execute() -> None:
        result.append(await engine.execute(run_id, on_event=on_event))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            await long_started.wait()
            assert engine.cancel(run_id) is True

    [run] = result
    assert (run.status.value, run.error, statuses(run)) == (
        "cancelled",
        "cancelled on request",
        {"quick": "succeeded", "long": "cancelled", "later": "pending"},
    )
    assert recovery_plan(run) == {
        "failures": {},
        "resume": {
            "keeps_committed": ["quick"],
            "reruns": ["long"],
            "then_runs": ["later"],
            "waiting_for_client": [],
        },
        "command": f"tutti resume {run_id}",
    }
    assert engine.cancel(run_id) is False


async def test_cancelling_a_run_that_is_not_executing_here_returns_false() -> None:
    engine, _ = make_engine()
    assert engine.cancel("run_nope") is False


# -- resume ------------------------------------------------------------------------------

CHAIN_WITH_SIDE = {
    "steps": [
        {"id": "a", "args": "A"},
        {"id": "b", "args": "${a.output}B", "depends_on": ["a"]},
        {"id": "c", "args": "${b.output}C"},
        {"id": "d", "args": "${a.output}D"},
    ]
}


async def test_resume_after_a_failure_reruns_only_the_uncommitted_steps() -> None:
    engine, _ = make_engine(ScriptedExecutor(fails={"b": 1}))
    with anyio.fail_after(5):
        failed = await engine.run(CHAIN_WITH_SIDE)
    assert (failed.status.value, statuses(failed)) == (
        "failed",
        {"a": "succeeded", "b": "failed", "c": "pending", "d": "succeeded"},
    )

    fixed = ScriptedExecutor()
    engine.executors[ExecutorKind.BUILTIN] = fixed
    with anyio.fail_after(5):
        resumed = await engine.resume(failed.id)

    assert sorted(fixed.calls) == [("b", 2), ("c", 1)]
    assert (resumed.status.value, resumed.error, statuses(resumed), outputs(resumed)) == (
        "succeeded",
        None,
        dict.fromkeys("abcd", "succeeded"),
        {"a": "A", "b": "AB", "c": "ABC", "d": "AD"},
    )
    assert {sid: rec.attempts for sid, rec in resumed.steps.items()} == {
        "a": 1,
        "b": 2,
        "c": 1,
        "d": 1,
    }


async def test_resume_commits_each_rerun_step_once_with_increasing_sequence_numbers() -> None:
    engine, store = make_engine(ScriptedExecutor(fails={"b": 1}))
    with anyio.fail_after(5):
        failed = await engine.run(CHAIN_WITH_SIDE)
        engine.executors[ExecutorKind.BUILTIN] = ScriptedExecutor()
        await engine.resume(failed.id)
    checkpoints = await store.checkpoints(failed.id)
    assert sorted(cp.step_id for cp in checkpoints) == ["a", "b", "c", "d"]
    assert [cp.seq for cp in checkpoints] == [1, 2, 3, 4]


async def test_resume_of_a_cancelled_run_reruns_the_cancelled_step_and_the_rest() -> None:
    gate = anyio.Event()
    first = ScriptedExecutor(gates={"long": gate})
    engine, _ = make_engine(first)
    run_id = await engine.create_run(
        {
            "steps": [
                {"id": "quick", "args": "q"},
                {"id": "long", "args": "l", "depends_on": ["quick"]},
                {"id": "later", "args": "${long.output}!"},
            ]
        }
    )
    long_started = anyio.Event()

    def on_event(kind: str, sid: str | None, _: dict[str, Any]) -> None:
        if (kind, sid) == ("step_started", "long"):
            long_started.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.execute(run_id, on_event=on_event))
            await long_started.wait()
            engine.cancel(run_id)

    second = ScriptedExecutor()
    engine.executors[ExecutorKind.BUILTIN] = second
    with anyio.fail_after(5):
        resumed = await engine.resume(run_id)
    assert second.calls == [("long", 2), ("later", 1)]
    assert (resumed.status.value, outputs(resumed)) == (
        "succeeded",
        {"quick": "q", "long": "l", "later": "l!"},
    )


async def test_resume_keeps_a_primary_whose_fallback_committed_failed_and_reruns_neither() -> None:
    backup_done = anyio.Event()  # `other` fails only once the fallback has committed
    first = ScriptedExecutor(fails={"primary": 1, "other": 1}, gates={"other": backup_done})
    engine, _ = make_engine(first)

    def on_event(kind: str, sid: str | None, _: dict[str, Any]) -> None:
        if (kind, sid) == ("step_succeeded", "backup"):
            backup_done.set()

    spec = {
        "steps": [
            {"id": "primary", "args": "P", "on_failure": "fallback", "fallback": "backup"},
            {"id": "backup", "args": "B"},
            {"id": "other", "args": "O"},
            {"id": "user", "args": "${primary.output}+${other.output}"},
        ]
    }
    with anyio.fail_after(5):
        failed = await engine.run(spec, on_event=on_event)
    assert (failed.status.value, statuses(failed)) == (
        "failed",
        {"primary": "failed", "backup": "succeeded", "other": "failed", "user": "pending"},
    )

    second = ScriptedExecutor()
    engine.executors[ExecutorKind.BUILTIN] = second
    with anyio.fail_after(5):
        resumed = await engine.resume(failed.id)

    assert sorted(second.calls) == [("other", 2), ("user", 1)]
    assert (resumed.status.value, statuses(resumed), resumed.steps["user"].output) == (
        "succeeded",
        {"primary": "failed", "backup": "succeeded", "other": "succeeded", "user": "succeeded"},
        "B+O",
    )
