"""A run store in plain dicts: for runs that need no durability (benchmarks of the
scheduler alone, `state_persistence: false`) and for tests of the engine's logic."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from tutti_mcp.memory.runs import history
from tutti_mcp.memory.runs.history import HistoryEntry, WorkflowHistory, summarize
from tutti_mcp.memory.runs.pipeline_rows import (
    ItemRow,
    ItemState,
    PipelineMark,
    PipelineSnapshot,
)
from tutti_mcp.memory.runs.records import (
    Checkpoint,
    Claim,
    Event,
    EventKind,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)
from tutti_mcp.memory.runs.store import RUN_FIELDS, STEP_FIELDS, RunNotFound


class InMemoryRunStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # when events happen (a durable workflow's own clock)
        self._runs: dict[str, RunRecord] = {}
        self._checkpoints: dict[str, dict[str, Checkpoint]] = {}
        self._events: dict[str, list[tuple[int, float, Event]]] = {}
        self._next_event = 0
        self._history: dict[str, HistoryEntry] = {}  # by run id
        self._pipelines: dict[tuple[str, str], PipelineSnapshot] = {}

    def _run(self, run_id: str) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    async def create_run(self, run: RunRecord, step_ids: Sequence[str]) -> None:
        run = dataclasses.replace(run)
        run.steps = {sid: StepRecord(sid) for sid in step_ids}
        self._runs[run.id] = run
        self._checkpoints[run.id] = {}
        self._events[run.id] = []
        self.append_event(Event(run.id, EventKind.RUN_CREATED))

    def peek(self, run_id: str) -> RunRecord | None:
        """`load_run` for a reader that cannot await (a Temporal query); None: no such run."""
        stored = self._runs.get(run_id)
        if stored is None:
            return None
        # specs and inputs are never mutated after creation; step records are copied
        run = dataclasses.replace(
            stored, steps={k: dataclasses.replace(v) for k, v in stored.steps.items()}
        )
        for cp in self._checkpoints[run_id].values():
            rec = run.steps[cp.step_id]
            rec.output, rec.usage, rec.seq = cp.output, cp.usage, cp.seq
        return run

    def peek_events(self, run_id: str, after: int = 0) -> list[tuple[int, float, Event]]:
        return [e for e in self._events.get(run_id, []) if e[0] > after]

    async def load_run(self, run_id: str) -> RunRecord:
        run = self.peek(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def set_run(self, run_id: str, **fields: Any) -> None:

        _refuse_unknown("run", fields, RUN_FIELDS)  # as SQLite does: no column, no field
        run = self._run(run_id)
        for k, v in fields.items():
            setattr(run, k, RunStatus(v) if k == "status" else v)
        if "status" in fields:
            self.append_event(Event(run_id, EventKind.of_run(RunStatus(fields["status"]))))

    async def claim_run(self, run_id: str, owner: str, dead_owner: str | None = None) -> Claim:
        run = self._run(run_id)  # no await before the update: the check and set are one step
        if not (
            run.status.resumable or (run.status is RunStatus.RUNNING and run.owner == dead_owner)
        ):
            return Claim(False, run.status, run.owner)
        run.status, run.owner = RunStatus.RUNNING, owner
        self.append_event(Event(run_id, EventKind.RUN_CLAIMED, data={"owner": owner}))
        return Claim(True, run.status, owner)

    def note_step_started(self, run_id: str, step_id: str, attempt: int, at: float) -> None:
        rec = self._runs[run_id].steps[step_id]
        rec.status, rec.attempts, rec.started_at = StepStatus.RUNNING, attempt, at

    def append_event(self, event: Event) -> None:
        self._next_event += 1
        self._events[event.run_id].append((self._next_event, self.clock(), event))

    async def commit_checkpoint(self, run_id: str, cp: Checkpoint) -> None:
        if not cp.seq:  # after the highest, as SQLite numbers it: a runner may skip numbers
            seq = max((c.seq for c in self._checkpoints[run_id].values()), default=0) + 1
            cp = dataclasses.replace(cp, seq=seq)
        self._checkpoints[run_id][cp.step_id] = cp
        rec = self._runs[run_id].steps[cp.step_id]
        rec.status, rec.attempts = cp.status, cp.attempts
        rec.started_at, rec.finished_at = cp.started_at, cp.finished_at
        rec.executor, rec.error, rec.detail = cp.executor, cp.error, None
        self.append_event(Event(run_id, EventKind.of_step(cp.status), cp.step_id, {"seq": cp.seq}))

    async def set_step(self, run_id: str, step_id: str, status: StepStatus, **fields: Any) -> None:

        _refuse_unknown("step", fields, STEP_FIELDS)
        rec = self._runs[run_id].steps[step_id]
        rec.status = status
        for k, v in fields.items():
            setattr(rec, k, v)
        self.append_event(Event(run_id, EventKind.of_step(status), step_id))

    async def add_steps(
        self, run_id: str, parent: str, steps: Sequence[tuple[str, dict[str, Any]]], start: int = 0
    ) -> None:
        run = self._run(run_id)
        for sid, _ in steps:
            if sid in run.steps:  # as SQLite's primary key refuses it
                raise ValueError(f"run {run_id!r} already has a step {sid!r}")
        for sid, scope in steps:
            run.steps[sid] = StepRecord(sid, parent=parent, scope=scope)
        run.steps[parent].status = StepStatus.RUNNING
        data = {"count": len(steps)}
        self.append_event(Event(run_id, EventKind.STEP_EXPANDED, parent, data))

    async def reset_steps(self, run_id: str, step_ids: Sequence[str]) -> None:
        for sid in step_ids:
            rec = self._runs[run_id].steps[sid]
            rec.status, rec.finished_at = StepStatus.PENDING, None

    async def commit_pipeline(
        self,
        run_id: str,
        step_id: str,
        rows: Sequence[ItemRow],
        mark: PipelineMark,
        prune_before: int = 0,
    ) -> None:
        self._run(run_id)  # as SQLite's foreign key refuses rows of an unknown run
        snap = self._pipelines.setdefault((run_id, step_id), PipelineSnapshot(mark, {}))
        for r in rows:  # handed over: the caller makes new rows for each commit
            snap.rows[r.item] = r
        if prune_before > 0:
            for item in [i for i, r in snap.rows.items() if i < prune_before]:
                if snap.rows[item].state is ItemState.SUNK:
                    del snap.rows[item]
        snap.mark = dataclasses.replace(mark, stats=dict(mark.stats))

    async def load_pipeline(self, run_id: str, step_id: str, rows: bool = True) -> PipelineSnapshot:
        snap = self._pipelines.get((run_id, step_id))
        if snap is None:
            return PipelineSnapshot(PipelineMark(), {})
        keys = sorted(snap.rows) if rows else []
        found = {i: dataclasses.replace(snap.rows[i]) for i in keys}
        mark = dataclasses.replace(snap.mark, stats=dict(snap.mark.stats))
        return PipelineSnapshot(mark, found)

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        return sorted(self._checkpoints[run_id].values(), key=lambda c: c.seq)

    async def list_runs(self, status: RunStatus | None = None, limit: int = 50) -> list[RunRecord]:
        runs = [r for r in self._runs.values() if status is None or r.status is status]
        return sorted(runs, key=lambda r: r.created_at, reverse=True)[:limit]

    async def events(self, run_id: str, after: int = 0) -> list[tuple[int, float, Event]]:
        return [e for e in self._events[run_id] if e[0] > after]

    async def flush(self) -> None:
        return None

    async def record_history(self, entry: HistoryEntry) -> None:
        self._history[entry.run_id] = entry
        for old in self._newest(entry.workflow)[history.HISTORY_KEEP :]:
            del self._history[old.run_id]

    async def workflow_history(
        self, name: str, limit: int = history.HISTORY_WINDOW
    ) -> WorkflowHistory:
        return summarize(name, self._newest(name)[:limit])

    def _newest(self, name: str) -> list[HistoryEntry]:
        entries = [e for e in self._history.values() if e.workflow == name]
        return sorted(entries, key=lambda e: (e.finished_at, e.run_id), reverse=True)


def _refuse_unknown(kind: str, fields: dict[str, Any], allowed: frozenset[str]) -> None:
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"unknown {kind} fields {sorted(bad)}")
