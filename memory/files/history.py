"""Revisions of memory files: every change appends one, holding the file's content after
the change (None when the change removed it), so any state can be listed, read back and
restored, until `prune` forgets old ones."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from tutti_mcp.memory.files.paths import (
    GLOBAL,
    ROOT,
    MemoryFileError,
    normalize_path,
    parse_scope,
    under,
)


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


_COLUMNS = "id, scope, path, rev, op, author, at, size, detail"


def history(
    conn: sqlite3.Connection, path: str = ROOT, *, scope: str = GLOBAL, limit: int = 50
) -> list[Revision]:
    """Revisions of a file, or of everything below a directory (deleted files included),
    newest first. A file's history follows it back across renames (see `_lineage`)."""
    scope = parse_scope(scope)
    norm = normalize_path(path)
    lo, hi = under(norm)
    limit = max(1, limit)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM memory_revisions "
        "WHERE scope = ? AND path >= ? AND path < ? ORDER BY id DESC LIMIT ?",
        (scope, lo, hi, limit),
    ).fetchall()
    if norm != ROOT:
        seen = {r[0] for r in rows}
        rows += [r for r in _lineage(conn, scope, norm, limit) if r[0] not in seen]
        rows.sort(key=lambda r: r[0], reverse=True)
    return [Revision(*r[1:]) for r in rows[:limit]]


def _lineage(conn: sqlite3.Connection, scope: str, path: str, limit: int) -> list[tuple[Any, ...]]:
    """The revisions of the file at `path`, newest first, back through its renames.

    A rename leaves two revisions: one at the old path that removes the file there
    (detail: the new path) and one at the new path that holds its content (detail: the
    old path). Reading back from the newest revision at `path`, an arrival by rename
    continues with the old path's revisions from before the rename (its departure left
    out, the arrival says it all). What the path held before that arrival was another
    file, so it is not part of this one's history; the path's own history shows it up to
    the rename."""
    out: list[tuple[Any, ...]] = []
    before: int | None = None  # revision ids below this one, on the current path
    skip: str | None = None  # the departure to leave out: its detail names the new path
    while len(out) < limit:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM memory_revisions WHERE scope = ? AND path = ? "
            "AND id < ? ORDER BY id DESC LIMIT ?",
            (scope, path, before if before is not None else 1 << 62, limit - len(out) + 1),
        ).fetchall()
        arrival = None
        for r in rows:
            op, size, detail = r[4], r[7], r[8]
            if skip is not None and op == "rename" and size is None and detail == skip:
                skip = None
                continue
            skip = None
            out.append(r)
            if op == "rename" and size is not None and detail:
                arrival = r
                break
        if arrival is None:
            break
        path, before, skip = arrival[8], arrival[0], path
    return out[:limit]


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
