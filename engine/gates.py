"""Approval gates: a step that waits for a person's yes or no.

A gate's answer is a decision, recorded durably: `{"approved", "note", "by", "at"}` (`by`:
"elicitation", "client", "cli" with the OS `user`, or "timeout"). Approved, it is the gate's
output and its dependents run. Rejected (or unanswered in time), the gate is recorded
failed with the decision in its detail; its dependents never run, and the run fails or
runs the gate's `on_reject` step instead (engine/core.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tutti_mcp.engine.errors import (
    StepError,
    StepErrorKind,
    StepNotWaiting,
    StepOutputRejected,
    TuttiError,
    UnknownStep,
)
from tutti_mcp.engine.spec import Step
from tutti_mcp.memory.runs.records import (
    Checkpoint,
    ClientRequest,
    RunRecord,
    StepRecord,
    StepStatus,
)
from tutti_mcp.memory.runs.store import RunStore

ANSWER_FORM = '{"approve": true, "note": "..."} (or "approve": false to reject)'
Decision = dict[str, Any]


class GateRejected(StepError):
    """A gate was answered no, or not in time: not retried; the gate's `on_reject` decides
    what follows."""

    def __init__(self, step_id: str, decision: Decision) -> None:
        self.step_id = step_id
        self.decision = decision
        note = decision.get("note")
        super().__init__(
            f"gate {step_id!r} rejected" + (f": {note}" if note else ""),
            retryable=False,
            kind=StepErrorKind.REJECTED,
        )


class NotAGate(TuttiError):
    def __init__(self, run_id: str, step_id: str) -> None:
        super().__init__(
            f"step {step_id!r} of run {run_id} is not an approval gate (it has no `approve`); "
            f"report its result with `tutti complete {run_id} {step_id}` or step_complete"
        )


def decision(
    approved: bool, note: str | None, by: str, at: float | None = None, **more: Any
) -> Decision:
    """A gate's decision as it is recorded; `at` (seconds since the epoch, default now) is
    written as an ISO time in UTC."""
    when = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return {
        "approved": approved,
        "note": note or None,
        "by": by,
        "at": when.isoformat(timespec="seconds"),
        **more,
    }


def timed_out(step_id: str, timeout_s: float, deadline: float) -> GateRejected:
    note = f"no answer within {timeout_s:g}s"
    return GateRejected(step_id, decision(False, note, "timeout", deadline))


def gate_answer(
    step_id: str, output: Any, error: str | None, by: str = "client", at: float | None = None
) -> Decision:
    """The decision a client's report on a gate makes: `output` must be
    {"approve": true|false, "note": "..."}; an `error` is a rejection with it as the note.
    Raises StepOutputRejected, saying what to send, for anything else."""
    if error is not None:
        return decision(False, error, by, at)
    if not isinstance(output, dict) or not isinstance(output.get("approve"), bool):
        raise StepOutputRejected(
            step_id,
            f"step {step_id!r} is an approval gate: put its question to your user, then send "
            f"their answer as output={ANSWER_FORM}",
        )
    extra = sorted(set(output) - {"approve", "note"})
    note = output.get("note")
    if extra or not (note is None or isinstance(note, str)):
        raise StepOutputRejected(
            step_id,
            f"an approval gate's answer has only `approve` (true or false) and `note` (text); "
            f"got {', '.join(extra) or 'a note that is not text'}. Send output={ANSWER_FORM}",
        )
    return decision(output["approve"], note, by, at)


def approval_request(
    run_id: str,
    step: Step,
    attempt: int,
    question: str,
    preview: str | None,
    deadline: float | None,
    on_reject: str | None,
) -> ClientRequest:
    """A gate handed to the calling agent: it puts the question to its user."""
    sid = step.id
    text = (
        "APPROVAL NEEDED. Put this question to your user and wait for their answer; do not "
        f"answer it yourself.\n\nQuestion: {question}"
    )
    if preview:
        text += f"\n\nPreview:\n{preview}"
    text += (
        f"\n\nThen call step_complete('{run_id}', '{sid}', output={ANSWER_FORM}) with their "
        f"answer and any note they give. From a terminal: "
        f"`tutti approve {run_id} {sid} --yes` (or --no), with --note TEXT."
    )
    if deadline is not None:
        when = datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds")
        text += f" Unanswered by {when}, the gate counts as rejected."
    return {
        "step_id": sid,
        "instructions": text,
        "system": None,
        "inputs": {},
        "output": "json",
        "attempt": attempt,
        "idempotency_key": f"{run_id}:{sid}",
        "approval": {
            "question": question,
            "preview": preview,
            "deadline": deadline,
            "timeout_s": step.timeout,
            "on_reject": on_reject or "fail",
        },
    }


def deadline_of(rec: StepRecord) -> float | None:
    """When a gate handed off earlier stops waiting (None: never, or it was not)."""
    approval = rec.request.get("approval")
    return None if approval is None else approval.get("deadline")


def waiting_gate(run: RunRecord, step: Step | None, step_id: str) -> StepRecord:
    """The gate's record, if it is a gate that waits for an answer; a clear error if not."""
    rec = run.steps.get(step_id)
    if rec is None or step is None:
        raise UnknownStep(run.id, step_id, list(run.steps))
    if step.approve is None:
        raise NotAGate(run.id, step_id)
    if rec.status is not StepStatus.WAITING:
        raise StepNotWaiting(run.id, step_id, rec.status.value)
    return rec


async def record_answer(store: RunStore, run_id: str, rec: StepRecord, answer: Decision) -> None:
    """Record a gate's answer while no process here executes the run: approved, its
    checkpoint; rejected, the gate failed with the decision (the process that executes the
    run next, or polls it, applies its `on_reject`)."""
    now = time.time()
    if answer["approved"]:
        cp = Checkpoint(
            rec.step_id,
            0,
            StepStatus.SUCCEEDED,
            answer,
            rec.attempts,
            rec.started_at,
            now,
            executor="gate",
        )
        await store.commit_checkpoint(run_id, cp)
        return
    await store.set_step(
        run_id,
        rec.step_id,
        StepStatus.FAILED,
        error=str(GateRejected(rec.step_id, answer)),
        finished_at=now,
        detail={"reported_by_client": True, "decision": answer},
    )


def rejection_of(rec: StepRecord) -> GateRejected | None:
    """The rejection recorded on a gate's failed record (None: it holds none)."""
    found = rec.detail.get("decision") if rec.detail else None
    return GateRejected(rec.step_id, found) if isinstance(found, dict) else None
