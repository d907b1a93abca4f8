"""The SQLite run store: one connection per process, WAL, a busy timeout, and group
commit (memory/group_commit.py: writes of steps and runs that finish together share one
transaction; writes that arrive while a commit is in flight share the next one).

A step's checkpoint, its status change and its event are one caller's statements: they
commit together or not at all. Writes that need not be durable on their own (a step
started, an event) are queued and ride along with the next commit, so a 1000-step chain
costs one commit per step, not three.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.memory.connection import Database, Ticket
from tutti_mcp.memory.runs import history, ownership, pipeline_sql
from tutti_mcp.memory.runs.history import HistoryEntry, HistoryWriteError, WorkflowHistory
from tutti_mcp.memory.runs.owner import owner_alive
from tutti_mcp.memory.runs.pipeline_rows import ItemRow, PipelineMark, PipelineSnapshot
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
from tutti_mcp.memory.runs.rows import Op, dump, event_op, load, run_from_row
from tutti_mcp.memory.runs.store import RUN_FIELDS, STEP_FIELDS, RunNotFound

_JSON_FIELDS = frozenset({"metrics", "inputs", "spec", "detail"})
_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (run_id, step_id, seq, status, output, attempts, "
    "started_at, finished_at, usage, executor, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_NEXT_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (run_id, step_id, seq, status, output, attempts, "
    "started_at, finished_at, usage, executor, error) VALUES (?,?,"
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM checkpoints WHERE run_id = ?),?,?,?,?,?,?,?,?)"
)


class SqliteRunStore:
    """Runs, steps, checkpoints and events in one SQLite file (or `:memory:`)."""

    def __init__(self, db: Database) -> None:
        self.db = db  # shared by the memory files and the model cache of the same file
        self.path = db.path
        self._started: dict[tuple[str, str], Ticket] = {}  # queued "step started" rows

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout_ms: int = 10_000) -> SqliteRunStore:
        """Open (creating it if need be) and set up the database; DatabaseOpenError, with
        the connection closed, when that fails."""
        return cls(await Database.open(path, busy_timeout_ms))

    async def close(self) -> None:
        try:
            await self.flush()
        finally:  # a queued write that failed must not keep the connection's threads alive
            await self.db.close()

    async def __aenter__(self) -> SqliteRunStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    # -- the write path --------------------------------------------------------------------
    async def _write(self, ops: Sequence[Op]) -> None:
        await self.db.write(ops)

    async def flush(self) -> None:
        """Make every queued write durable."""
        await self.db.flush()

    # -- runs ------------------------------------------------------------------------------
    async def create_run(self, run: RunRecord, step_ids: Sequence[str]) -> None:
        ops: list[Op] = [
            (
                "INSERT INTO runs (id, name, status, spec, inputs, created_at, started_at, "
                "finished_at, owner, parent_run_id, error, metrics, workspace) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.id,
                    run.name,
                    run.status.value,
                    dump(run.spec),
                    dump(run.inputs),
                    run.created_at,
                    run.started_at,
                    run.finished_at,
                    run.owner,
                    run.parent_run_id,
                    run.error,
                    None if run.metrics is None else dump(run.metrics),
                    run.workspace,
                ),
            )
        ]
        ops += [
            (
                "INSERT INTO steps (run_id, step_id, status) VALUES (?, ?, ?)",
                (run.id, sid, StepStatus.PENDING.value),
            )
            for sid in step_ids
        ]
        ops.append(
            event_op(Event(run.id, EventKind.RUN_CREATED, data={"parent": run.parent_run_id}))
        )
        await self._write(ops)

    async def set_run(self, run_id: str, **fields: Any) -> None:
        bad = set(fields) - RUN_FIELDS
        if bad:
            raise ValueError(f"unknown run fields {sorted(bad)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        values = tuple(
            dump(v)
            if k in _JSON_FIELDS and v is not None
            else (v.value if isinstance(v, RunStatus) else v)
            for k, v in fields.items()
        )
        ops: list[Op] = [(f"UPDATE runs SET {cols} WHERE id = ?", (*values, run_id))]
        if "status" in fields:
            ops.append(event_op(Event(run_id, EventKind.of_run(RunStatus(fields["status"])))))
        await self._write(ops)

    async def claim_run(self, run_id: str, owner: str, dead_owner: str | None = None) -> Claim:
        """Make `owner` the owner of a run that no process executes, and mark it running:
        one compare-and-set in one transaction, so of processes claiming a run at once
        exactly one wins. Claimable: a resumable run, or a run still marked running by
        `dead_owner` (an owner the caller found dead). Says whether this claim won, and
        who has the run (read in the same transaction)."""
        # in the write order: writes queued before the claim commit before it or with it
        claim = await self.db.transact(ownership.claim, run_id, owner, dead_owner)
        if claim is None:
            raise RunNotFound(run_id)
        return claim

    async def load_run(self, run_id: str) -> RunRecord:
        await self.flush()
        rows = list(await self.db.fetchall("SELECT * FROM runs WHERE id = ?", (run_id,)))
        if not rows:
            raise RunNotFound(run_id)
        run = run_from_row(rows[0])
        for r in await self.db.fetchall(
            "SELECT step_id, status, attempts, executor, started_at, finished_at, error, detail, "
            "parent, scope FROM steps WHERE run_id = ? ORDER BY parent IS NOT NULL, parent, pos",
            (run_id,),
            large=True,
        ):
            run.steps[r[0]] = StepRecord(
                step_id=r[0],
                status=StepStatus(r[1]),
                attempts=r[2],
                executor=r[3],
                started_at=r[4],
                finished_at=r[5],
                error=r[6],
                detail=load(r[7]),
                parent=r[8],
                scope=load(r[9]),
            )
        for cp in await self.checkpoints(run_id):
            rec = run.steps.setdefault(cp.step_id, StepRecord(cp.step_id))
            rec.output, rec.usage, rec.seq = cp.output, cp.usage, cp.seq
        order = [s.get("id") for s in run.spec.get("steps", []) if isinstance(s, dict)]
        if order:  # spec order, not the table's key order; steps added at run time after
            steps = {sid: run.steps[sid] for sid in order if sid in run.steps}
            steps.update((sid, rec) for sid, rec in run.steps.items() if rec.parent is not None)
            run.steps = steps
        return run

    async def list_runs(self, status: RunStatus | None = None, limit: int = 50) -> list[RunRecord]:
        await self.flush()
        if status is None:
            sql, params = "SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,)
        else:
            sql = "SELECT * FROM runs WHERE status = ? ORDER BY created_at DESC LIMIT ?"
            params = (status.value, limit)  # type: ignore[assignment]
        return [run_from_row(r) for r in await self.db.fetchall(sql, params, large=True)]

    async def mark_orphans_interrupted(self) -> list[str]:
        """Runs left `running` by a process that no longer exists become `interrupted`;
        their running steps become `interrupted` (resume runs them again). A run claimed
        by a live process meanwhile (its owner changed) is left alone."""
        await self.flush()
        rows = await self.db.fetchall(
            "SELECT id, owner FROM runs WHERE status = ?", (RunStatus.RUNNING.value,), large=True
        )
        dead = [(r[0], r[1]) for r in rows if not owner_alive(r[1])]
        if not dead:
            return []
        marked: list[str] = await self.db.call(ownership.mark_orphans, dead)
        return marked

    async def prune(self, *, older_than_s: float, keep_last: int = 0) -> int:
        """Delete finished runs older than `older_than_s` seconds (keeping the newest
        `keep_last` of them), with their steps, checkpoints and events."""
        cutoff = time.time() - older_than_s
        await self.flush()
        rows = await self.db.fetchall(
            "SELECT id FROM runs WHERE status IN (?, ?, ?) AND created_at < ? "
            "ORDER BY created_at DESC LIMIT -1 OFFSET ?",
            (
                RunStatus.SUCCEEDED.value,
                RunStatus.FAILED.value,
                RunStatus.CANCELLED.value,
                cutoff,
                keep_last,
            ),
            large=True,
        )
        ids = [r[0] for r in rows]
        ops: list[Op] = []
        for run_id in ids:
            for table, col in (
                ("events", "run_id"),
                ("checkpoints", "run_id"),
                ("steps", "run_id"),
                ("runs", "id"),
            ):
                ops.append((f"DELETE FROM {table} WHERE {col} = ?", (run_id,)))
        if ops:
            await self._write(ops)
        return len(ids)

    # -- steps -----------------------------------------------------------------------------
    def note_step_started(self, run_id: str, step_id: str, attempt: int, at: float) -> None:
        if self._started and not self.db.queued(next(iter(self._started.values()))):
            self._started = {}  # those batches are committed: nothing left to take back
        self._started[(run_id, step_id)] = self.db.queue(
            "UPDATE steps SET status = ?, attempts = ?, started_at = ? WHERE run_id = ? AND step_id = ?",
            (StepStatus.RUNNING.value, attempt, at, run_id, step_id),
        )

    def append_event(self, event: Event) -> None:
        self.db.queue(*event_op(event))

    async def commit_checkpoint(self, run_id: str, cp: Checkpoint) -> None:
        started = self._started.pop((run_id, cp.step_id), None)
        if started is not None:  # if still queued, the checkpoint's row says it all
            self.db.unqueue(started)
        values = (
            cp.status.value,
            dump(cp.output),
            cp.attempts,
            cp.started_at,
            cp.finished_at,
            None if cp.usage is None else dump(cp.usage),
            cp.executor,
            cp.error,
        )
        await self._write(
            [
                # the runner numbers its own; other writers take the run's next number
                (_CHECKPOINT, (run_id, cp.step_id, cp.seq, *values))
                if cp.seq
                else (_NEXT_CHECKPOINT, (run_id, cp.step_id, run_id, *values)),
                (
                    "UPDATE steps SET status = ?, attempts = ?, started_at = ?, finished_at = ?, "
                    "executor = ?, error = ?, detail = NULL WHERE run_id = ? AND step_id = ?",
                    (
                        cp.status.value,
                        cp.attempts,
                        cp.started_at,
                        cp.finished_at,
                        cp.executor,
                        cp.error,
                        run_id,
                        cp.step_id,
                    ),
                ),
                event_op(Event(run_id, EventKind.of_step(cp.status), cp.step_id)),
            ]
        )

    async def set_step(self, run_id: str, step_id: str, status: StepStatus, **fields: Any) -> None:
        bad = set(fields) - STEP_FIELDS
        if bad:
            raise ValueError(f"unknown step fields {sorted(bad)}")
        cols = "".join(f", {k} = ?" for k in fields)
        values = tuple(
            dump(v) if k in _JSON_FIELDS and v is not None else v for k, v in fields.items()
        )
        data = {k: v for k, v in fields.items() if k in ("error", "attempts")} or None
        await self._write(
            [
                (
                    f"UPDATE steps SET status = ?{cols} WHERE run_id = ? AND step_id = ?",
                    (status.value, *values, run_id, step_id),
                ),
                event_op(Event(run_id, EventKind.of_step(status), step_id, data)),
            ]
        )

    async def add_steps(
        self, run_id: str, parent: str, steps: Sequence[tuple[str, dict[str, Any]]], start: int = 0
    ) -> None:
        ops: list[Op] = [
            (
                "INSERT INTO steps (run_id, step_id, status, parent, pos, scope) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, sid, StepStatus.PENDING.value, parent, start + i, dump(scope)),
            )
            for i, (sid, scope) in enumerate(steps)
        ]
        ops.append(
            (
                "UPDATE steps SET status = ? WHERE run_id = ? AND step_id = ?",
                (StepStatus.RUNNING.value, run_id, parent),
            )
        )
        ops.append(event_op(Event(run_id, EventKind.STEP_EXPANDED, parent, {"count": len(steps)})))
        await self._write(ops)

    async def reset_steps(self, run_id: str, step_ids: Sequence[str]) -> None:
        """Steps without a checkpoint go back to pending before a resume runs them again."""
        await self._write(
            [
                (
                    "UPDATE steps SET status = ?, finished_at = NULL WHERE run_id = ? AND step_id = ?",
                    (StepStatus.PENDING.value, run_id, sid),
                )
                for sid in step_ids
            ]
        )

    # -- pipeline steps (memory/runs/pipeline_rows.py) -------------------------------------
    async def commit_pipeline(
        self,
        run_id: str,
        step_id: str,
        rows: Sequence[ItemRow],
        mark: PipelineMark,
        prune_before: int = 0,
    ) -> None:
        await self._write(pipeline_sql.commit_ops(run_id, step_id, rows, mark, prune_before))

    async def load_pipeline(self, run_id: str, step_id: str, rows: bool = True) -> PipelineSnapshot:
        """The step's mark, and its rows unless `rows` is false."""
        await self.flush()
        return await pipeline_sql.read(self.db, run_id, step_id, rows)

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        await self.flush()
        rows = await self.db.fetchall(
            "SELECT step_id, seq, status, output, attempts, started_at, finished_at, usage, executor, "
            "error FROM checkpoints WHERE run_id = ? ORDER BY seq",
            (run_id,),
            large=True,
        )
        return [
            Checkpoint(
                step_id=r[0],
                seq=r[1],
                status=StepStatus(r[2]),
                output=load(r[3]),
                attempts=r[4],
                started_at=r[5],
                finished_at=r[6],
                usage=load(r[7]),
                executor=r[8],
                error=r[9],
            )
            for r in rows
        ]

    async def events(self, run_id: str, after: int = 0) -> list[tuple[int, float, Event]]:
        await self.flush()
        rows = await self.db.fetchall(
            "SELECT id, ts, kind, step_id, data FROM events WHERE run_id = ? AND id > ? ORDER BY id",
            (run_id, after),
            large=True,
        )
        return [(r[0], r[1], Event(run_id, EventKind(r[2]), r[3], load(r[4]))) for r in rows]

    # -- workflow history (memory/runs/history.py) -----------------------------------------------
    async def record_history(self, entry: HistoryEntry) -> None:
        """Store a finished run's entry; a failure here fails only this write, not the
        checkpoints of other runs committed with it."""
        try:
            await self._write(history.record_ops(entry))
        except sqlite3.Error as exc:
            raise HistoryWriteError(entry.run_id, exc) from exc

    async def workflow_history(
        self, name: str, limit: int = history.HISTORY_WINDOW
    ) -> WorkflowHistory:
        return history.summarize(name, await history.read_entries(self.db, name, limit))

    async def size_stats(self) -> dict[str, int]:
        """Bytes used per table (dbstat when compiled in), and the file's page usage."""
        rows = list(await self.db.fetchall("PRAGMA page_count"))
        size = list(await self.db.fetchall("PRAGMA page_size"))
        out = {"file_bytes": rows[0][0] * size[0][0]}
        try:
            for name, used in await self.db.fetchall(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name", large=True
            ):
                out[name] = used
        except sqlite3.OperationalError:
            pass
        return out
