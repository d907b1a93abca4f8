"""How a run ends: its resting status and error, decided from the core's state (pure), and
its entry in the workflow's history, which later plans read."""

from __future__ import annotations

from collections.abc import Mapping

from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.report import Segments
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.history import DecisionEntry, HistoryEntry, entry_from_run, ran_here
from tutti_mcp.memory.runs.records import RunRecord, RunStatus


def resting_status(
    core: RunCore, *, cancel_requested: bool, outer_cancel: bool, waiting: bool
) -> tuple[RunStatus, str | None]:
    """The status a run rests in when its execution ends, and why (for the unhappy ones)."""
    if cancel_requested:
        return RunStatus.CANCELLED, "cancelled on request"
    if outer_cancel:
        return RunStatus.INTERRUPTED, "the process running it stopped; resume to continue"
    if core.done:
        return RunStatus.SUCCEEDED, None
    if core.stop_reason is not None:
        return RunStatus.FAILED, core.stop_reason
    if waiting:
        return RunStatus.WAITING, None
    return RunStatus.FAILED, "no step can run: check conditions and dependencies"


def history_entry(
    run: RunRecord,
    wf: Workflow,
    decisions: Mapping[str, DecisionEntry],
    restored: int,
) -> HistoryEntry:
    """The finished run's history entry. Conditions of steps committed by an earlier
    execution held (they ran): they count among the decisions too."""
    taken = dict(decisions)
    for sid in wf.order:
        when, rec = wf.steps[sid].when, run.steps[sid]
        if when is None or sid in taken or not rec.status.has_output:
            continue
        if rec.seq is not None and ran_here(run, rec):
            guarded = wf.conditions.get(sid)  # in an if block: decided as its block's
            when, value = guarded.when_ran() if guarded is not None else (when, True)
            taken[sid] = DecisionEntry(sid, when, value)
    return entry_from_run(
        run,
        executors={sid: kind.value for sid, kind in wf.executors.items()},
        decisions=[taken[sid] for sid in wf.order if sid in taken],
        restored=restored,
    )


def segments_of(earlier: Segments | None, started: float, now: float) -> Segments:
    """The run's execution segments: earlier executions' and this one's."""
    return Segments.first(started, now) if earlier is None else earlier.then(started, now)
