"""Named, append-only schema migrations. Each is applied in the same transaction as its
record in `migrations`; never edit one that has shipped, add a new one."""

from __future__ import annotations

import sqlite3
import time
from functools import partial

from tutti_mcp.memory.busy import retry_busy

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_runs_steps_checkpoints_events",
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            spec TEXT NOT NULL,
            inputs TEXT NOT NULL,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            owner TEXT,
            parent_run_id TEXT,
            error TEXT,
            metrics TEXT,
            workspace TEXT
        );
        CREATE INDEX runs_by_status ON runs(status, created_at);
        CREATE INDEX runs_by_created ON runs(created_at);
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            executor TEXT,
            started_at REAL,
            finished_at REAL,
            error TEXT,
            detail TEXT,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID;
        CREATE TABLE checkpoints (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            output TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            started_at REAL,
            finished_at REAL NOT NULL,
            usage TEXT,
            executor TEXT,
            error TEXT,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID;
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            step_id TEXT,
            data TEXT
        );
        CREATE INDEX events_by_run ON events(run_id, id);
        """,
    ),
    (
        "0002_memory_files",
        """
        CREATE TABLE memory_files (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            path TEXT NOT NULL,
            content TEXT NOT NULL,
            size INTEGER NOT NULL,
            rev INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (scope, path)
        );
        CREATE TABLE memory_revisions (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            path TEXT NOT NULL,
            rev INTEGER NOT NULL,
            op TEXT NOT NULL,
            content TEXT,
            size INTEGER,
            author TEXT NOT NULL,
            at REAL NOT NULL,
            detail TEXT,
            UNIQUE (scope, path, rev)
        );
        CREATE INDEX memory_revisions_by_time ON memory_revisions(at);
        CREATE VIRTUAL TABLE memory_fts USING fts5(
            path, content, content='memory_files', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER memory_files_ai AFTER INSERT ON memory_files BEGIN
            INSERT INTO memory_fts(rowid, path, content) VALUES (new.id, new.path, new.content);
        END;
        CREATE TRIGGER memory_files_ad AFTER DELETE ON memory_files BEGIN
            INSERT INTO memory_fts(memory_fts, rowid, path, content)
            VALUES ('delete', old.id, old.path, old.content);
        END;
        CREATE TRIGGER memory_files_au AFTER UPDATE ON memory_files BEGIN
            INSERT INTO memory_fts(memory_fts, rowid, path, content)
            VALUES ('delete', old.id, old.path, old.content);
            INSERT INTO memory_fts(rowid, path, content) VALUES (new.id, new.path, new.content);
        END;
        """,
    ),
    (
        # Workflow memory: one entry per finished run, kept per workflow name (by `workflow`,
        # newest first), independent of the runs table so pruning runs keeps their history.
        "0003_workflow_history",
        """
        CREATE TABLE history_runs (
            run_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            finished_at REAL NOT NULL,
            duration_s REAL,
            restored INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX history_runs_by_workflow ON history_runs(workflow, finished_at DESC, run_id DESC);
        CREATE TABLE history_steps (
            run_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            pos INTEGER NOT NULL,
            status TEXT NOT NULL,
            executor TEXT,
            attempts INTEGER NOT NULL,
            duration_s REAL,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID;
        CREATE TABLE history_decisions (
            run_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            condition TEXT NOT NULL,
            taken INTEGER,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID;
        """,
    ),
    (
        # What the Models API said about each model (its ModelInfo as JSON), with when, so
        # a process starts from it and asks again only once it is older than the refresh age.
        "0004_model_capabilities",
        """
        CREATE TABLE model_capabilities (
            id TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            fetched_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    (
        # Steps added while a run executes (a `foreach` step's instances): the step they
        # belong to, their place among its steps, and what they see of their own (the item).
        "0005_steps_added_at_run_time",
        """
        ALTER TABLE steps ADD COLUMN parent TEXT;
        ALTER TABLE steps ADD COLUMN pos INTEGER;
        ALTER TABLE steps ADD COLUMN scope TEXT;
        """,
    ),
    (
        # Pipeline steps (memory/runs/pipeline_rows.py): each item's latest stage completed,
        # or its dead letter, committed in batches; and where each pipeline step stands.
        "0006_pipeline_items",
        """
        CREATE TABLE pipeline_items (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            item INTEGER NOT NULL,
            stage INTEGER NOT NULL,
            state TEXT NOT NULL,
            value TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            pos INTEGER,
            PRIMARY KEY (run_id, step_id, item)
        ) WITHOUT ROWID;
        CREATE TABLE pipeline_marks (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            frontier INTEGER NOT NULL,
            sink_offset INTEGER NOT NULL,
            sunk INTEGER NOT NULL,
            dead INTEGER NOT NULL,
            stats TEXT,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID;
        """,
    ),
    (
        # MCP tasks (server/tasks_ext.py): a task is a run seen through the tasks protocol,
        # so it outlives the server process. `final` seals a status the client may have seen
        # as terminal (tasks never leave one); `result` is the tool's answer for a task that
        # failed before it had a run.
        "0007_mcp_tasks",
        """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
            tool TEXT NOT NULL,
            created_at REAL NOT NULL,
            ttl_ms INTEGER,
            final TEXT,
            final_at REAL,
            result TEXT
        ) WITHOUT ROWID;
        CREATE INDEX tasks_by_created ON tasks(created_at);
        CREATE INDEX tasks_by_run ON tasks(run_id);
        """,
    ),
    (
        # A task's run may live on Temporal (TUTTI_BACKEND=temporal), not in this database:
        # no foreign key; a trigger still drops the tasks of a run pruned here.
        "0008_tasks_of_runs_elsewhere",
        """
        CREATE TABLE tasks_new (
            id TEXT PRIMARY KEY,
            run_id TEXT,
            tool TEXT NOT NULL,
            created_at REAL NOT NULL,
            ttl_ms INTEGER,
            final TEXT,
            final_at REAL,
            result TEXT
        ) WITHOUT ROWID;
        INSERT INTO tasks_new SELECT id, run_id, tool, created_at, ttl_ms, final, final_at, result
            FROM tasks;
        DROP TABLE tasks;
        ALTER TABLE tasks_new RENAME TO tasks;
        CREATE INDEX tasks_by_created ON tasks(created_at);
        CREATE INDEX tasks_by_run ON tasks(run_id);
        CREATE TRIGGER tasks_of_pruned_runs AFTER DELETE ON runs BEGIN
            DELETE FROM tasks WHERE run_id = old.id;
        END;
        """,
    ),
]


def statements(sql: str) -> list[str]:
    """Split a script into statements; a trigger body's `;` does not end its statement."""
    out: list[str] = []
    current = ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def apply_migrations(conn: sqlite3.Connection, busy_timeout_s: float = 0.0) -> list[str]:
    """Apply pending migrations (safe to call twice, and from two processes at once: a
    transaction that finds the database busy is retried for up to `busy_timeout_s`)."""
    deadline = time.monotonic() + busy_timeout_s
    retry_busy(
        lambda: conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
        ),
        deadline,
    )
    return [
        name for name, sql in MIGRATIONS if retry_busy(partial(_apply, conn, name, sql), deadline)
    ]


def _apply(conn: sqlite3.Connection, name: str, sql: str) -> bool:
    """Apply one migration with its record, in one transaction; False if already applied."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
            conn.execute("ROLLBACK")
            return False
        for statement in statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True
