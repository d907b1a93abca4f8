"""Approval gates: a step `approve: "<question>"` waits durably for a person's yes or no,
answered through step_complete (in this process or another), by elicitation, or not in
time; a rejection skips the gate's dependents and fails the run or runs its on_reject."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import SpecError, StepOutputRejected
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.executors.gate import ApprovalAnswer, ApprovalQuestion, Asker, GateExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio


def gated(**gate: Any) -> dict[str, Any]:
    """plan -> confirm (a gate) -> apply; `restore` runs only if the gate says no."""
    return {
        "name": "gated",
        "steps": [
            {"id": "plan", "value": {"count": 3, "files": ["a.py", "b.py", "c.py"]}},
            {
                "id": "confirm",
                "approve": "Apply ${plan.output.count} edits?",
                "preview": "${plan.output.files | join(', ')}",
                **gate,
            },
            {"id": "apply", "depends_on": ["confirm"], "args": "applied ${plan.output.count}"},
            {"id": "report", "depends_on": ["apply"], "args": "done"},
            {"id": "restore", "depends_on": ["plan"], "args": "kept as it was"},
        ],
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteRunStore]:
    async with await SqliteRunStore.open(tmp_path / "runs.db") as s:
        yield s


def make_engine(
    store: SqliteRunStore, tmp_path: Path, asker: Asker | None = None, poll_s: float = 60.0
) -> Engine:
    return Engine(
        store,
        {
            ExecutorKind.BUILTIN: BuiltinExecutor(),
            ExecutorKind.CLIENT: ClientExecutor(),
            ExecutorKind.GATE: GateExecutor(asker),
        },
        EngineConfig(client_poll_s=poll_s, workspace=tmp_path),
    )


def statuses(run: RunRecord) -> dict[str, str]:
    return {sid: rec.status.value for sid, rec in run.steps.items()}


async def attached(engine: Engine, run_id: str, on_waiting: Any) -> RunRecord:
    """Execute attached; `on_waiting(step_id)` is called (in a task) when a step waits."""
    result: list[RunRecord] = []

    async with anyio.create_task_group() as tg:

        def on_event(kind: str, sid: str | None, data: dict[str, Any]) -> None:
            if kind == "step_waiting":
                tg.start_soon(on_waiting, sid)

        async def execute() -> None:
            result.append(await engine.execute(run_id, attached=True, on_event=on_event))

        tg.start_soon(execute)
    return result[0]


# -- handed to the client ---------------------------------------------------------------


async def test_a_gate_waits_durably_with_its_question_and_preview_rendered(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path)
    with anyio.fail_after(5):
        run = await engine.run(gated())
    assert run.status is RunStatus.WAITING
    assert statuses(run) == {
        "plan": "succeeded",
        "confirm": "waiting",
        "apply": "pending",
        "report": "pending",
        "restore": "succeeded",
    }
    stored = await store.load_run(run.id)  # the pause is in the database, not in memory
    request = stored.steps["confirm"].request
    assert request["approval"] == {
        "question": "Apply 3 edits?",
        "preview": "a.py, b.py, c.py",
        "deadline": None,
        "timeout_s": None,
        "on_reject": "fail",
    }
    assert "Apply 3 edits?" in request["instructions"]
    assert '"approve": true' in request["instructions"]
    assert f"tutti approve {run.id} confirm" in request["instructions"]


async def test_an_approval_through_step_complete_records_the_decision_and_runs_dependents(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path)
    with anyio.fail_after(5):
        run = await engine.run(gated())
        await engine.complete_step(run.id, "confirm", output={"approve": True, "note": "go"})
        done = await engine.resume(run.id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    out = done.steps["confirm"].output
    assert {k: out[k] for k in ("approved", "note", "by")} == {
        "approved": True,
        "note": "go",
        "by": "client",
    }
    assert out["at"].endswith("+00:00")
    assert done.steps["apply"].output == "applied 3"
    assert done.steps["report"].status is StepStatus.SUCCEEDED


async def test_a_rejection_in_process_fails_the_run_naming_the_gate_and_the_note(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path)
    run_id = await engine.create_run(gated())

    async def answer(sid: str) -> None:
        await engine.complete_step(run_id, sid, output={"approve": False, "note": "too many"})

    with anyio.fail_after(5):
        run = await attached(engine, run_id, answer)
    assert run.status is RunStatus.FAILED
    assert run.error == "gate 'confirm' rejected: too many"
    gate = run.steps["confirm"]
    assert gate.status is StepStatus.FAILED
    assert gate.failure["decision"]["approved"] is False
    assert gate.failure["decision"]["by"] == "client"
    assert gate.failure["decision"]["note"] == "too many"
    assert run.steps["apply"].status is StepStatus.PENDING  # the run stopped before it


async def test_a_rejection_with_on_reject_runs_that_step_and_skips_the_gates_dependents(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path)
    spec = gated(on_reject="restore")
    with anyio.fail_after(5):
        run = await engine.run(spec)
        assert statuses(run)["restore"] == "pending"  # runs only on a rejection
        await engine.complete_step(run.id, "confirm", output={"approve": False, "note": "no"})
        done = await engine.resume(run.id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert statuses(done) == {
        "plan": "succeeded",
        "confirm": "failed",
        "apply": "skipped",
        "report": "skipped",
        "restore": "succeeded",
    }
    assert done.steps["apply"].skip_reason == "gate 'confirm' rejected: no"
    assert done.steps["report"].skip_reason == "dependency 'apply' was skipped"
    assert done.steps["confirm"].failure["decision"]["note"] == "no"


async def test_an_approved_gate_leaves_its_on_reject_step_skipped(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path)
    run_id = await engine.create_run(gated(on_reject="restore"))

    async def answer(sid: str) -> None:
        await engine.complete_step(run_id, sid, output={"approve": True})

    with anyio.fail_after(5):
        run = await attached(engine, run_id, answer)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.steps["restore"].status is StepStatus.SKIPPED
    assert run.steps["restore"].skip_reason == "gate 'confirm' approved"
    assert run.steps["report"].status is StepStatus.SUCCEEDED


async def test_a_gate_answer_of_the_wrong_shape_says_what_to_send(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path)
    with anyio.fail_after(5):
        run = await engine.run(gated())
        for wrong in ("yes", {"approved": True}, {"approve": True, "why": "x"}):
            with pytest.raises(StepOutputRejected, match='output=\\{"approve": true'):
                await engine.complete_step(run.id, "confirm", output=wrong)
    assert (await store.load_run(run.id)).steps["confirm"].status is StepStatus.WAITING


# -- timeouts --------------------------------------------------------------------------


async def test_an_attached_run_rejects_an_unanswered_gate_when_its_timeout_passes(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path)  # polls the store once a minute: not what wakes it
    run_id = await engine.create_run(gated(timeout=0.3, on_reject="restore"))

    async def ignore(sid: str) -> None:
        pass

    with anyio.fail_after(10):
        run = await attached(engine, run_id, ignore)
    assert run.status is RunStatus.SUCCEEDED, run.error
    decision = run.steps["confirm"].failure["decision"]
    assert decision["by"] == "timeout"
    assert decision["note"] == "no answer within 0.3s"
    assert run.steps["apply"].skip_reason == "gate 'confirm' rejected: no answer within 0.3s"
    assert run.steps["restore"].status is StepStatus.SUCCEEDED


async def test_a_run_resumed_after_the_deadline_rejects_the_gate_at_once(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    now = [1_000_000.0]
    engine = make_engine(store, tmp_path)
    engine.config.clock = lambda: now[0]
    with anyio.fail_after(5):
        run = await engine.run(gated(timeout=3600))
        assert run.steps["confirm"].request["approval"]["deadline"] == 1_000_000.0 + 3600
        now[0] += 1800  # resumed before the deadline: it keeps waiting, same deadline
        again = await engine.resume(run.id)
        assert again.status is RunStatus.WAITING
        assert again.steps["confirm"].request["approval"]["deadline"] == 1_000_000.0 + 3600
        now[0] += 1801
        done = await engine.resume(run.id)
    assert done.status is RunStatus.FAILED
    assert done.error == "gate 'confirm' rejected: no answer within 3600s"
    assert done.steps["confirm"].failure["decision"]["by"] == "timeout"


# -- elicitation -----------------------------------------------------------------------


class User:
    """An asker whose user answers each question as told (None: cannot be asked)."""

    def __init__(self, answer: ApprovalAnswer | None) -> None:
        self.answer = answer
        self.asked: list[ApprovalQuestion] = []

    async def __call__(self, question: ApprovalQuestion) -> ApprovalAnswer | None:
        self.asked.append(question)
        return self.answer


async def test_a_gate_asks_by_elicitation_when_the_engine_has_an_asker(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    user = User(ApprovalAnswer(True, "fine"))
    engine = make_engine(store, tmp_path, user)
    with anyio.fail_after(5):
        run = await engine.run(gated())
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert [(q.question, q.preview) for q in user.asked] == [("Apply 3 edits?", "a.py, b.py, c.py")]
    assert run.steps["confirm"].output["by"] == "elicitation"
    assert run.steps["confirm"].executor == "gate"


async def test_a_gate_declined_by_elicitation_is_a_rejection(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = make_engine(store, tmp_path, User(ApprovalAnswer(False, "declined in the client")))
    with anyio.fail_after(5):
        run = await engine.run(gated())
    assert run.status is RunStatus.FAILED
    assert run.error == "gate 'confirm' rejected: declined in the client"
    assert run.steps["confirm"].failure["decision"]["by"] == "elicitation"


async def test_a_gate_that_cannot_be_asked_by_elicitation_becomes_a_client_task(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    user = User(None)
    engine = make_engine(store, tmp_path, user)
    with anyio.fail_after(5):
        run = await engine.run(gated())
    assert len(user.asked) == 1
    assert run.status is RunStatus.WAITING
    assert run.steps["confirm"].request["approval"]["question"] == "Apply 3 edits?"


# -- validation ------------------------------------------------------------------------


def problems(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        compile_workflow(parse_spec(spec))
    return [str(p) for p in info.value.problems]


def test_a_gate_with_an_executor_field_is_refused_naming_the_field() -> None:
    spec = gated()
    spec["steps"][1]["prompt"] = "do it"
    (msg,) = problems(spec)
    assert msg.startswith("steps[1] (confirm): step 'confirm' is an approval gate")
    assert "drop `prompt`" in msg


def test_on_reject_and_preview_need_a_gate() -> None:
    spec = gated()
    spec["steps"][2]["on_reject"] = "restore"
    (msg,) = problems(spec)
    assert "`on_reject` belongs to approval gates" in msg


def test_on_reject_must_name_a_step_that_runs_only_on_rejection() -> None:
    assert problems(gated(on_reject="restor")) == [
        "steps[1] (confirm).on_reject: unknown step 'restor'; did you mean 'restore'?"
    ]
    spec = gated(on_reject="restore")
    spec["steps"][4]["depends_on"] = ["apply"]
    (msg,) = problems(spec)
    assert msg.startswith("steps (confirm).on_reject: on_reject step 'restore' depends on apply")


def test_a_step_is_the_on_reject_of_one_gate_only() -> None:
    spec = gated(on_reject="restore")
    spec["steps"].append({"id": "again", "approve": "Sure?", "on_reject": "restore"})
    (msg,) = problems(spec)
    assert "'restore' is already the on_reject step of gate 'confirm'" in msg


def test_on_reject_fail_is_the_default() -> None:
    wf = compile_workflow(parse_spec(gated(on_reject="fail")))
    assert wf.reject_to == {} and wf.executors["confirm"] is ExecutorKind.GATE
