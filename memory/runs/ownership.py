"""Which process executes a run, decided in the database: the claim of a run and the
orphan check are each a compare-and-set inside a write transaction (BEGIN IMMEDIATE, then
an UPDATE whose WHERE holds what the caller saw), so that of processes racing for a run
exactly one gets it. A claim runs inside a group commit's transaction (it costs no round
trip of its own); the orphan check is a transaction of its own on the connection's
thread."""

from __future__ import annotations

import sqlite3

from tutti_mcp.memory.runs.records import Claim, Event, EventKind, RunStatus, StepStatus
from tutti_mcp.memory.runs.rows import event_op

_RESUMABLE = tuple(s.value for s in RunStatus if s.resumable)


def claim(
    conn: sqlite3.Connection, run_id: str, owner: str, dead_owner: str | None
) -> Claim | None:
    """Make `owner` the run's owner and its status running, if it is resumable or still
    running under `dead_owner`; with the run's status and owner as they are after (None:
    there is no such run). Runs inside the caller's transaction (the store's group
    commit: Database.transact), which holds SQLite's write lock from its start, so the
    UPDATE's condition and the SELECT see the same state."""
    won = (
        conn.execute(
            "UPDATE runs SET owner = ?, status = ? WHERE id = ? AND (status IN "
            f"({','.join('?' * len(_RESUMABLE))}) OR (status = ? AND owner IS ?))",
            (
                owner,
                RunStatus.RUNNING.value,
                run_id,
                *_RESUMABLE,
                RunStatus.RUNNING.value,
                dead_owner,
            ),
        ).rowcount
        == 1
    )
    if won:
        data = {"owner": owner, "previous_owner": dead_owner}
        conn.execute(*event_op(Event(run_id, EventKind.RUN_CLAIMED, data=data)))
    row = conn.execute("SELECT status, owner FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else Claim(won, RunStatus(row[0]), row[1])


def mark_orphans(conn: sqlite3.Connection, dead: list[tuple[str, str | None]]) -> list[str]:
    """Compare-and-set, run by run: only a run still owned by the owner found dead."""
    marked = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for run_id, owner in dead:
            if not conn.execute(
                "UPDATE runs SET status = ?, owner = NULL WHERE id = ? AND status = ? AND owner IS ?",
                (RunStatus.INTERRUPTED.value, run_id, RunStatus.RUNNING.value, owner),
            ).rowcount:
                continue
            conn.execute(
                "UPDATE steps SET status = ? WHERE run_id = ? AND status = ?",
                (StepStatus.INTERRUPTED.value, run_id, StepStatus.RUNNING.value),
            )
            data = {"reason": "owner process gone"}
            conn.execute(*event_op(Event(run_id, EventKind.RUN_INTERRUPTED, data=data)))
            marked.append(run_id)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return marked
