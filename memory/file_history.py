"""Revisions of memory files: every change appends one, holding the file's content after
the change (None when the change removed it), so any state can be listed, read back and
restored, until `prune` forgets old ones."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from memory.paths import GLOBAL, ROOT, MemoryFileError, normalize_path, parse_scope, under


@dataclass(frozen=True)
class Revision:
    scope: str
    path: str
    rev: int
    op: str  # create, str_replace, insert, delete, rename, restore, import
    author: str  # "client", or "run:<run_id>/step:<step_id>"
    at: float
    size: int | None  # bytes after the change; None when the change removed the file
    detail: str | None  # rename: the other path; restore: which revision came back
    content: str | None = None  # only when asked for one revision


def history(
    conn: sqlite3.Connection, path: str = ROOT, *, scope: str = GLOBAL, limit: int = 50
) -> list[Revision]:
    """Revisions of a file, or of everything below a directory (deleted files included),
    newest first."""
    scope = parse_scope(scope)
    norm = normalize_path(path)
    lo, hi = under(norm)
    rows = conn.execute(
        "SELECT scope, path, rev, op, author, at, size, detail FROM memory_revisions "
        "WHERE (scope = ? AND path = ?) OR (scope = ? AND path >= ? AND path < ?) "
        "ORDER BY id DESC LIMIT ?",
        (scope, norm, scope, lo, hi, max(1, limit)),
    ).fetchall()
    return [Revision(*r) for r in rows]


def revision(conn: sqlite3.Connection, path: str, rev: int, *, scope: str = GLOBAL) -> Revision:
    scope = parse_scope(scope)
    norm = normalize_path(path)
    row = conn.execute(
        "SELECT scope, path, rev, op, author, at, size, detail, content "
        "FROM memory_revisions WHERE scope = ? AND path = ? AND rev = ?",
        (scope, norm, rev),
    ).fetchone()
    if row is None:
        raise MemoryFileError(
            f"{norm} has no revision {rev} in scope {scope}: call memory_history to list its revisions"
        )
    return Revision(*row)


def prune(conn: sqlite3.Connection, cutoff: float) -> int:
    """Forget revisions made before `cutoff`, except each live file's current one (call
    inside a transaction)."""
    cur = conn.execute(
        "DELETE FROM memory_revisions WHERE at < ? AND id NOT IN ("
        "SELECT r.id FROM memory_revisions r JOIN memory_files f "
        "ON f.scope = r.scope AND f.path = r.path AND f.rev = r.rev)",
        (cutoff,),
    )
    return cur.rowcount
