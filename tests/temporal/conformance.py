"""Run one spec on both backends and bring the two records to a form that can be compared.

A case may answer the steps that wait for the caller (client steps, approval gates), in
order, some answers meant to be rejected (the rejection's text is kept and compared), and
may cancel the run once a named step runs. The embedded side is an Engine over an
InMemoryRunStore executing attached, as tests/engine do; the Temporal side is the generic
workflow on an in-process worker, steered through TemporalRuns alone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from tests.temporal.conftest import Backend
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import TuttiError
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.executors.gate import GateExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepStatus

RUN_TIMEOUT_S = 20.0  # one case on one backend, on a loaded machine
POLL_S = 0.05  # how often the Temporal side reads a run it waits on (a query: no event)


@dataclass(frozen=True)
class Answer:
    """What the caller sends for a waiting step; `rejected`: the backend must refuse it
    (and the run keep waiting)."""

    output: Any = None
    error: str | None = None
    rejected: bool = False


@dataclass(frozen=True)
class Case:
    id: str
    spec: Mapping[str, Any]
    inputs: Mapping[str, Any] = field(default_factory=dict)
    answers: Mapping[str, tuple[Answer, ...]] = field(default_factory=dict)
    cancel_when_running: str | None = None  # cancel the run once this step is running
    files: Mapping[str, str] = field(default_factory=dict)  # written into the workspace


@dataclass
class Outcome:
    record: RunRecord
    rejections: list[str] = field(default_factory=list)


def prepare_workspace(workspace: Path, case: Case) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    for name, text in case.files.items():
        (workspace / name).write_text(text)


class _Answers:
    def __init__(self, case: Case) -> None:
        self.left = {sid: list(answers) for sid, answers in case.answers.items()}
        self.rejections: list[str] = []

    def next_for(self, step_id: str) -> Answer:
        left = self.left.get(step_id)
        if not left:
            raise AssertionError(f"step {step_id!r} waits for an answer the case does not give")
        return left.pop(0)


async def run_embedded(
    case: Case, workspace: Path, executors: Mapping[ExecutorKind, StepExecutor]
) -> Outcome:
    prepare_workspace(workspace, case)
    engine = Engine(
        InMemoryRunStore(),
        {**executors, ExecutorKind.CLIENT: ClientExecutor(), ExecutorKind.GATE: GateExecutor()},
        EngineConfig(workspace=workspace, client_poll_s=86_400.0),
    )
    prepared = await engine.create(case.spec, case.inputs)
    run_id = prepared.run_id
    answers = _Answers(case)
    send, receive = anyio.create_memory_object_stream[str](100)
    result: list[RunRecord] = []

    def on_event(kind: str, sid: str | None, data: dict[str, Any]) -> None:
        if kind == "step_waiting" and sid is not None:
            send.send_nowait(sid)
        elif kind == "step_started" and sid == case.cancel_when_running:
            engine.cancel(run_id)

    async def execute() -> None:
        async with send:
            result.append(await engine.execute(prepared, attached=True, on_event=on_event))

    with anyio.fail_after(RUN_TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            async with receive:
                async for sid in receive:
                    while True:
                        answer = answers.next_for(sid)
                        try:
                            await engine.complete_step(
                                run_id, sid, output=answer.output, error=answer.error
                            )
                        except TuttiError as exc:
                            assert answer.rejected, f"{sid}: {exc}"
                            answers.rejections.append(str(exc))
                            continue
                        assert not answer.rejected, f"{sid}: {answer} was taken"
                        break
    return Outcome(result[0], answers.rejections)


async def run_temporal(case: Case, backend: Backend) -> Outcome:
    prepare_workspace(backend.workspace, case)
    runs = backend.runs
    run_id = await backend.start(case.spec, case.inputs)
    answers = _Answers(case)
    cancelled = False
    with anyio.fail_after(RUN_TIMEOUT_S):
        while True:
            view = await runs.view(run_id)
            if not view.open:
                return Outcome(view.record, answers.rejections)
            steps = view.record.steps
            target = steps.get(case.cancel_when_running or "")
            if not cancelled and target is not None and target.status is StepStatus.RUNNING:
                await runs.cancel(run_id)
                cancelled = True
            for sid, rec in steps.items():
                if rec.status is StepStatus.WAITING and answers.left.get(sid):
                    await _answer_temporal(backend, run_id, sid, answers)
            await anyio.sleep(POLL_S)


async def _answer_temporal(backend: Backend, run_id: str, sid: str, answers: _Answers) -> None:
    while True:
        answer = answers.next_for(sid)
        try:
            await backend.runs.complete(run_id, sid, answer.output, answer.error)
        except TuttiError as exc:
            assert answer.rejected, f"{sid}: {exc}"
            answers.rejections.append(str(exc))
            # refused: the run must still wait for this step
            view = await backend.runs.view(run_id)
            assert view.open and view.record.steps[sid].status is StepStatus.WAITING
            continue
        assert not answer.rejected, f"{sid}: {answer} was taken"
        return


_STEP_TIMES = ("started_at", "finished_at", "seq")
_RUN_DROPPED = ("id", "owner", "created_at", "started_at", "finished_at", "workspace", "metrics")


def normalized(outcome: Outcome) -> dict[str, Any]:
    """The record without what differs by nature between two runs: ids, owners, timings,
    workspaces; the run's id inside texts replaced by <run>."""
    run = outcome.record
    steps = {}
    for sid, rec in run.steps.items():
        detail: dict[str, Any] = dict(rec.detail or {})
        decision = detail.get("decision")
        if isinstance(decision, dict):  # a gate's: when it was decided differs
            detail["decision"] = {k: v for k, v in decision.items() if k != "at"}
        output = rec.output
        if rec.executor == "gate" and isinstance(output, dict):  # the decision's time
            output = {k: v for k, v in output.items() if k != "at"}
        steps[sid] = {
            "status": rec.status.value,
            "attempts": rec.attempts,
            "executor": rec.executor,
            "output": output,
            "usage": rec.usage,
            "error": rec.error,
            "detail": detail or None,
            "parent": rec.parent,
            "scope": rec.scope,
        }
    out = {
        "order": list(run.steps),
        "status": run.status.value,
        "name": run.name,
        "error": run.error,
        "spec": run.spec,
        "inputs": run.inputs,
        "parent_run_id": run.parent_run_id,
        "steps": steps,
        "partial": (run.metrics or {}).get("partial"),
        "status_counts": (run.metrics or {}).get("status_counts"),
        "rejections": outcome.rejections,
    }
    same: dict[str, Any] = _unrun(out, run.id)
    return same


_FAKE_REPLY = re.compile(r"fake reply \d+:")  # the fake API numbers its replies


def _unrun(value: Any, run_id: str) -> Any:
    if isinstance(value, str):
        return _FAKE_REPLY.sub("fake reply:", value.replace(run_id, "<run>"))
    if isinstance(value, dict):
        return {_unrun(k, run_id): _unrun(v, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_unrun(v, run_id) for v in value]
    return value


def ended(outcome: Outcome) -> RunStatus:
    return outcome.record.status
