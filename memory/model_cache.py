"""The Models API cache: each model's ModelInfo (as the API sent it, JSON) and when it was
fetched, in the run store's database (migration 0004_model_capabilities). Reads and
writes run whole on the store's connection thread, like the memory files, so they never
interleave with the run store's commits."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tutti_mcp.memory.connection import Database
from tutti_mcp.memory.runs.rows import dump, load

if TYPE_CHECKING:
    from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

CachedModel = tuple[dict[str, Any], float]  # (ModelInfo as JSON, fetched_at)


def _read(conn: sqlite3.Connection, ids: Sequence[str] | None) -> dict[str, CachedModel]:
    if ids is None:
        rows = conn.execute("SELECT id, data, fetched_at FROM model_capabilities").fetchall()
    else:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT id, data, fetched_at FROM model_capabilities WHERE id IN ({marks})",
            tuple(ids),
        ).fetchall()
    return {r[0]: (load(r[1]), r[2]) for r in rows}


def _write(conn: sqlite3.Connection, rows: list[tuple[str, str, float]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO model_capabilities (id, data, fetched_at) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data, fetched_at = excluded.fetched_at",
            rows,
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class ModelCache:
    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def of(cls, store: SqliteRunStore) -> ModelCache:
        """Share a SqliteRunStore's connection (and database)."""
        return cls(store.db)

    async def load(self, ids: Iterable[str] | None = None) -> dict[str, CachedModel]:
        """The cached entries of `ids` (every entry when None)."""
        wanted = None if ids is None else list(ids)
        if wanted == []:
            return {}
        return await self._db.call(_read, wanted)

    async def save(self, entries: Iterable[tuple[str, dict[str, Any], float]]) -> None:
        rows = [(model_id, dump(data), at) for model_id, data, at in entries]
        if rows:
            await self._db.call(_write, rows)
