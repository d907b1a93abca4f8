"""Workflow memory: per workflow name, what each finished run did (each step's outcome,
attempts and duration, the decisions its conditions took, the run's outcome and
duration), and the summary that planning reads back.

The summary takes the median of the recent durations of a step, not a mean or an EWMA:
one slow outlier (a retried API call, a cold cache) moves a mean or an EWMA at once,
while the median of the last runs moves only when most of them change.

Both stores keep `HistoryEntry` values and share `summarize`; the SQL of the SQLite
store is here too (tables of migration 0003)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tutti_mcp.memory.connection import Database
from tutti_mcp.memory.errors import TuttiError
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus

HISTORY_WINDOW = 20  # the latest runs of a workflow a summary reads
HISTORY_KEEP = 200  # entries kept per workflow name; older ones go when a run is recorded
# Outcomes worth a history line: the step got somewhere. Pending, running, waiting or
# interrupted steps of a finished run never got to run, or were stopped with it.
_SETTLED = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.DEGRADED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    }
)
_RAN = frozenset({StepStatus.SUCCEEDED, StepStatus.DEGRADED, StepStatus.FAILED})

Op = tuple[str, tuple[Any, ...]]


class HistoryWriteError(TuttiError):
    """A run's history entry could not be stored (the run itself is unaffected)."""

    def __init__(self, run_id: str, cause: BaseException) -> None:
        super().__init__(f"history of run {run_id} not recorded: {cause}")
        self.run_id = run_id


# -- what is recorded ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StepEntry:
    step_id: str
    status: StepStatus
    attempts: int
    executor: str | None
    duration_s: float | None  # start of the first attempt to the end; only if it ran in this run


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    step_id: str
    condition: str  # the step's `when`, as written
    taken: bool | None  # None: the condition could not be evaluated (the step was skipped)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One finished run. Recording it again (a resumed run finishing) replaces it."""

    run_id: str
    workflow: str
    status: RunStatus
    finished_at: float
    duration_s: float | None  # wall time of the execution that finished the run
    restored: int  # steps that execution took from checkpoints instead of running them
    steps: tuple[StepEntry, ...]
    decisions: tuple[DecisionEntry, ...] = ()


def ran_here(run: RunRecord, rec: StepRecord) -> bool:
    """Whether the step ran in this run: a fork's copied checkpoints carry their parent's
    times, from before this run was created, and are already in the parent's entry."""
    return rec.started_at is not None and rec.started_at >= run.created_at


def entry_from_run(
    run: RunRecord,
    *,
    executors: Mapping[str, str],
    decisions: Sequence[DecisionEntry] = (),
    restored: int = 0,
) -> HistoryEntry:
    """The history entry of a finished run, from its record."""
    assert run.finished_at is not None, "only finished runs have a history entry"
    steps = []
    for rec in run.steps.values():
        # steps added at run time (foreach instances, loop iterations) plan nothing later:
        # their step's own entry stands for them
        if rec.status not in _SETTLED or rec.parent is not None:
            continue
        measured = rec.status in _RAN and rec.finished_at is not None and ran_here(run, rec)
        steps.append(
            StepEntry(
                step_id=rec.step_id,
                status=rec.status,
                attempts=rec.attempts,
                executor=rec.executor or executors.get(rec.step_id),
                duration_s=rec.duration_s if measured else None,
            )
        )
    return HistoryEntry(
        run_id=run.id,
        workflow=run.name,
        status=run.status,
        finished_at=run.finished_at,
        duration_s=None if run.started_at is None else run.finished_at - run.started_at,
        restored=restored,
        steps=tuple(steps),
        decisions=tuple(decisions),
    )


# -- what planning reads ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StepHistory:
    step_id: str
    runs: int  # recorded runs in which the step has an outcome
    outcomes: dict[str, int]  # step status -> runs
    measured: int  # runs in which it ran here and took a known time
    median_s: float | None
    last_s: float | None  # the most recent measured duration
    retried: int  # runs in which it took more than one attempt
    executor: str | None  # where it ran most recently

    @property
    def failures(self) -> int:
        return self.outcomes.get("failed", 0) + self.outcomes.get("degraded", 0)


@dataclass(frozen=True, slots=True)
class DecisionHistory:
    step_id: str
    condition: str  # the latest text; older runs with another text are not counted
    taken: int
    not_taken: int
    errors: int


@dataclass(frozen=True, slots=True)
class WorkflowHistory:
    name: str
    runs: int  # entries read (the latest, up to the window)
    outcomes: dict[str, int]  # run status -> runs
    median_run_s: float | None  # over runs executed start to finish by one execution
    last_status: RunStatus | None
    steps: dict[str, StepHistory]
    decisions: dict[str, DecisionHistory]

    @property
    def success_rate(self) -> float | None:
        return self.outcomes.get("succeeded", 0) / self.runs if self.runs else None

    def durations(self) -> dict[str, float]:
        """Median measured duration per step: planning's `history_s`."""
        return {sid: s.median_s for sid, s in self.steps.items() if s.median_s is not None}

    def summary(self) -> dict[str, Any] | None:
        """A compact view for plan answers (read by a model); None without history."""
        if not self.runs:
            return None
        out: dict[str, Any] = {
            "runs": self.runs,
            "outcomes": self.outcomes,
            "success_rate": round(self.success_rate or 0.0, 2),
            "median_run_s": None if self.median_run_s is None else round(self.median_run_s, 3),
        }
        failing = {sid: s.failures for sid, s in self.steps.items() if s.failures}
        if failing:
            out["step_failures"] = failing
        retried = {sid: s.retried for sid, s in self.steps.items() if s.retried}
        if retried:
            out["step_retries"] = retried
        if self.decisions:
            out["decisions"] = {
                sid: {
                    "when": d.condition,
                    "true": d.taken,
                    "false": d.not_taken,
                    **({"errors": d.errors} if d.errors else {}),
                }
                for sid, d in self.decisions.items()
            }
        return out


def summarize(name: str, entries: Sequence[HistoryEntry]) -> WorkflowHistory:
    """The history of a workflow from its entries, newest first."""
    per_step: dict[str, list[StepEntry]] = {}
    for e in entries:
        for s in e.steps:
            per_step.setdefault(s.step_id, []).append(s)
    steps = {}
    for sid, seen in per_step.items():
        times = [s.duration_s for s in seen if s.duration_s is not None]
        steps[sid] = StepHistory(
            step_id=sid,
            runs=len(seen),
            outcomes=dict(Counter(s.status.value for s in seen)),
            measured=len(times),
            median_s=statistics.median(times) if times else None,
            last_s=times[0] if times else None,
            retried=sum(1 for s in seen if s.attempts > 1),
            executor=seen[0].executor,
        )
    decisions: dict[str, DecisionHistory] = {}
    latest: dict[str, str] = {}
    counts: dict[str, Counter[bool | None]] = {}
    for e in entries:
        for d in e.decisions:
            condition = latest.setdefault(d.step_id, d.condition)
            if d.condition == condition:
                counts.setdefault(d.step_id, Counter())[d.taken] += 1
    place = {sid: i for i, sid in enumerate(steps)}  # the steps' order, in both stores
    for sid in sorted(counts, key=lambda s: (place.get(s, len(place)), s)):
        c = counts[sid]
        decisions[sid] = DecisionHistory(sid, latest[sid], c[True], c[False], c[None])
    whole = [e.duration_s for e in entries if e.duration_s is not None and not e.restored]
    return WorkflowHistory(
        name=name,
        runs=len(entries),
        outcomes=dict(Counter(e.status.value for e in entries)),
        median_run_s=statistics.median(whole) if whole else None,
        last_status=entries[0].status if entries else None,
        steps=steps,
        decisions=decisions,
    )


# -- SQLite ----------------------------------------------------------------------------------
_NEWEST = (
    "SELECT run_id FROM history_runs WHERE workflow = ? ORDER BY finished_at DESC, run_id DESC"
)


def record_ops(entry: HistoryEntry, keep: int | None = None) -> list[Op]:
    """Statements that replace the run's entry and drop the workflow's entries beyond the
    newest `keep` (HISTORY_KEEP)."""
    keep = HISTORY_KEEP if keep is None else keep
    rid = entry.run_id
    ops: list[Op] = [
        (f"DELETE FROM {table} WHERE run_id = ?", (rid,))
        for table in ("history_steps", "history_decisions", "history_runs")
    ]
    ops.append(
        (
            "INSERT INTO history_runs (run_id, workflow, status, finished_at, duration_s, restored) "
            "VALUES (?,?,?,?,?,?)",
            (
                rid,
                entry.workflow,
                entry.status.value,
                entry.finished_at,
                entry.duration_s,
                entry.restored,
            ),
        )
    )
    ops += [
        (
            "INSERT INTO history_steps (run_id, step_id, pos, status, executor, attempts, "
            "duration_s) VALUES (?,?,?,?,?,?,?)",
            (rid, s.step_id, pos, s.status.value, s.executor, s.attempts, s.duration_s),
        )
        for pos, s in enumerate(entry.steps)
    ]
    ops += [
        (
            "INSERT INTO history_decisions (run_id, step_id, condition, taken) VALUES (?,?,?,?)",
            (rid, d.step_id, d.condition, None if d.taken is None else int(d.taken)),
        )
        for d in entry.decisions
    ]
    for table in ("history_steps", "history_decisions", "history_runs"):
        ops.append(
            (
                f"DELETE FROM {table} WHERE run_id IN ({_NEWEST} LIMIT -1 OFFSET ?)",
                (entry.workflow, keep),
            )
        )
    return ops


async def read_entries(db: Database, name: str, limit: int) -> list[HistoryEntry]:
    """The workflow's latest `limit` entries, newest first."""
    runs = list(
        await db.fetchall(
            "SELECT run_id, status, finished_at, duration_s, restored FROM history_runs "
            "WHERE workflow = ? ORDER BY finished_at DESC, run_id DESC LIMIT ?",
            (name, limit),
        )
    )
    if not runs:
        return []
    newest = f"{_NEWEST} LIMIT ?"
    steps: dict[str, list[StepEntry]] = {}
    for r in await db.fetchall(
        "SELECT run_id, step_id, status, attempts, executor, duration_s FROM history_steps "
        f"WHERE run_id IN ({newest}) ORDER BY run_id, pos",
        (name, limit),
    ):
        steps.setdefault(r[0], []).append(StepEntry(r[1], StepStatus(r[2]), r[3], r[4], r[5]))
    decisions: dict[str, list[DecisionEntry]] = {}
    for r in await db.fetchall(
        "SELECT run_id, step_id, condition, taken FROM history_decisions "
        f"WHERE run_id IN ({newest}) ORDER BY run_id, step_id",
        (name, limit),
    ):
        taken = None if r[3] is None else bool(r[3])
        decisions.setdefault(r[0], []).append(DecisionEntry(r[1], r[2], taken))
    return [
        HistoryEntry(
            run_id=r[0],
            workflow=name,
            status=RunStatus(r[1]),
            finished_at=r[2],
            duration_s=r[3],
            restored=r[4],
            steps=tuple(steps.get(r[0], ())),
            decisions=tuple(decisions.get(r[0], ())),
        )
        for r in runs
    ]
