"""Memory files: documents under /memories with the command semantics of Anthropic's memory
tool (`memory_20250818`: view, create, str_replace, insert, delete, rename), kept in the
same SQLite database as the runs.

Every change is one transaction (BEGIN IMMEDIATE, so two processes writing the same file
serialise instead of losing an update) that also appends a revision holding the file's
content after the change, with its author: nothing is lost on overwrite or delete, and
`restore` brings any revision back. Files live in a scope: "global", "project:<key>" or
"workflow:<name>". Search is FTS5 over paths and contents, ranked by bm25.

Directories are implicit, as in a key-value store: a directory exists while a file lies
below it (and /memories always exists).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tutti_mcp.memory.files import history as file_history
from tutti_mcp.memory.files import search as file_search
from tutti_mcp.memory.files.history import Revision
from tutti_mcp.memory.files.paths import (
    GLOBAL,
    ROOT,
    Limits,
    MemoryFileError,
    MemoryNotFound,
    MemoryPathError,
    check_content,
    normalize_path,
    number_lines,
    parent_dirs,
    parse_scope,
    render_listing,
    under,
)
from tutti_mcp.memory.files.search import SearchHit

CLIENT = "client"


@dataclass(frozen=True)
class FileInfo:
    scope: str
    path: str
    size: int
    rev: int
    updated_at: float


def step_author(run_id: str, step_id: str) -> str:
    return f"run:{run_id}/step:{step_id}"


class MemoryFiles:
    """The memory store over one sqlite3 connection (autocommit mode, migrations applied).
    Not thread-safe on its own: give each thread its own, or use `AsyncMemoryFiles`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conn = conn
        self.limits = limits or Limits()
        self.clock = clock

    @classmethod
    def open(cls, path: str | Path, *, limits: Limits | None = None) -> MemoryFiles:
        from tutti_mcp.memory.connection import open_sync

        conn = open_sync(path)
        return cls(conn, limits=limits)

    def close(self) -> None:
        self.conn.close()

    # -- the six commands ------------------------------------------------------------------
    def view(
        self, path: str, view_range: Sequence[int] | None = None, *, scope: str = GLOBAL
    ) -> str:
        scope = parse_scope(scope)
        norm = normalize_path(path, self.limits)
        content = self._content(scope, norm)
        if content is None:
            if not self._is_dir(scope, norm):
                raise MemoryNotFound(norm)
            return self._listing(scope, norm)
        lines = content.split("\n")
        start = 1
        if view_range is not None:
            first, last = view_range
            n = len(lines)
            if not 1 <= first <= n:
                raise MemoryFileError(
                    f"Invalid `view_range`: {list(view_range)}. Its first element should be within "
                    f"the file's lines [1, {n}]"
                )
            if last != -1 and not first <= last <= n:
                raise MemoryFileError(
                    f"Invalid `view_range`: {list(view_range)}. Its second element should be -1 "
                    f"or within [{first}, {n}]"
                )
            lines = lines[first - 1 : None if last == -1 else last]
            start = first
        return f"Here's the content of {norm} with line numbers:\n" + number_lines(lines, start)

    def create(
        self, path: str, file_text: str, *, scope: str = GLOBAL, author: str = CLIENT
    ) -> str:
        scope = parse_scope(scope)
        norm = self._file_path(path)
        check_content(file_text, norm, self.limits)
        with self._tx():
            if self._content(scope, norm) is not None:
                raise MemoryFileError(f"File {norm} already exists")
            self._check_creatable(scope, norm)
            self._insert(scope, norm, file_text, "create", author)
        return f"File created successfully at: {norm}"

    def str_replace(
        self, path: str, old_str: str, new_str: str, *, scope: str = GLOBAL, author: str = CLIENT
    ) -> str:
        scope = parse_scope(scope)
        norm = normalize_path(path, self.limits)
        if old_str == "":
            raise MemoryFileError("`old_str` is empty: give the exact text to replace")
        with self._tx():
            content = self._existing_file(scope, norm)
            count = content.count(old_str)
            if count == 0:
                raise MemoryFileError(
                    f"No replacement was performed, old_str `{old_str}` did not appear verbatim in {norm}."
                )
            if count > 1:
                lines: list[int] = []
                pos = content.find(old_str)
                while pos != -1:
                    line = content.count("\n", 0, pos) + 1
                    if not lines or lines[-1] != line:
                        lines.append(line)
                    pos = content.find(old_str, pos + 1)
                raise MemoryFileError(
                    f"No replacement was performed. Multiple occurrences of old_str `{old_str}` "
                    f"({count} times) in lines: {', '.join(map(str, lines))}. Please ensure it is "
                    "unique: include more of the surrounding text"
                )
            pos = content.find(old_str)
            new = content.replace(old_str, new_str, 1)
            check_content(new, norm, self.limits, field="new_str")
            self._update(scope, norm, new, "str_replace", author)
        changed = content.count("\n", 0, pos)
        new_lines = new.split("\n")
        first, last = max(0, changed - 2), min(len(new_lines), changed + 3)
        return (
            "The memory file has been edited. Here is the snippet showing the change (with line numbers):\n"
            + number_lines(new_lines[first:last], first + 1)
        )

    def insert(
        self,
        path: str,
        insert_line: int,
        insert_text: str,
        *,
        scope: str = GLOBAL,
        author: str = CLIENT,
    ) -> str:
        scope = parse_scope(scope)
        norm = normalize_path(path, self.limits)
        with self._tx():
            content = self._existing_file(scope, norm)
            lines = content.split("\n")
            if lines[-1] == "":
                lines.pop()
            if not 0 <= insert_line <= len(lines):
                raise MemoryFileError(
                    f"Invalid `insert_line` parameter: {insert_line}. "
                    f"It should be within the range [0, {len(lines)}]."
                )
            lines.insert(insert_line, insert_text.rstrip("\n"))
            new = "\n".join(lines)
            if not new.endswith("\n"):
                new += "\n"
            check_content(new, norm, self.limits, field="insert_text")
            self._update(scope, norm, new, "insert", author)
        return f"The file {norm} has been edited."

    def delete(self, path: str, *, scope: str = GLOBAL, author: str = CLIENT) -> str:
        scope = parse_scope(scope)
        norm = normalize_path(path, self.limits)
        if norm == ROOT:
            raise MemoryPathError("Cannot delete the /memories directory itself")
        with self._tx():
            paths = [f.path for f in self.files(scope=scope, prefix=norm)]
            if not paths:
                raise MemoryNotFound(norm, f"The path {norm} does not exist")
            for p in paths:
                self._remove(scope, p, "delete", author, None)
        return f"Successfully deleted {norm}"

    def rename(
        self, old_path: str, new_path: str, *, scope: str = GLOBAL, author: str = CLIENT
    ) -> str:
        scope = parse_scope(scope)
        old = normalize_path(old_path, self.limits, field="old_path")
        new = normalize_path(new_path, self.limits, field="new_path")
        if old == ROOT:
            raise MemoryPathError("Cannot rename the /memories directory itself")
        with self._tx():
            if new == ROOT or self._content(scope, new) is not None or self._is_dir(scope, new):
                raise MemoryFileError(f"The destination {new} already exists")
            paths = [f.path for f in self.files(scope=scope, prefix=old)]
            if not paths:
                raise MemoryNotFound(old, f"The path {old} does not exist")
            if new.startswith(old + "/"):
                raise MemoryPathError(f"Cannot move {old} into itself ({new})")
            self._check_creatable(scope, new)
            for p in paths:
                target = new + p[len(old) :]
                content = self._content(scope, p)
                assert content is not None
                self._remove(scope, p, "rename", author, target)
                self._insert(scope, target, content, "rename", author, detail=p)
        return f"Successfully renamed {old} to {new}"

    # -- beyond the memory tool: reading, history, restore, search -----------------------
    def read(self, path: str, *, scope: str = GLOBAL) -> str:
        """A file's text as stored (no line numbers)."""
        scope = parse_scope(scope)
        norm = normalize_path(path, self.limits)
        content = self._content(scope, norm)
        if content is None:
            if self._is_dir(scope, norm):
                raise MemoryFileError(f"The path {norm} is a directory; view it to list its files")
            raise MemoryNotFound(norm)
        return content

    def files(self, *, scope: str = GLOBAL, prefix: str = ROOT) -> list[FileInfo]:
        """Files of a scope below `prefix` (itself included when it is a file), in path order."""
        scope = parse_scope(scope)
        norm = normalize_path(prefix, self.limits, field="prefix")
        lo, hi = under(norm)
        rows = self.conn.execute(  # each side of the OR can use the (scope, path) index
            "SELECT scope, path, size, rev, updated_at FROM memory_files "
            "WHERE (scope = ? AND path = ?) OR (scope = ? AND path >= ? AND path < ?) "
            "ORDER BY path",
            (scope, norm, scope, lo, hi),
        ).fetchall()
        return [FileInfo(*r) for r in rows]

    def scopes(self) -> dict[str, int]:
        """Each scope that holds files, with how many."""
        rows = self.conn.execute(
            "SELECT scope, count(*) FROM memory_files GROUP BY scope ORDER BY scope"
        )
        return dict(rows.fetchall())

    def put(
        self, path: str, text: str, *, scope: str = GLOBAL, author: str = CLIENT, op: str = "import"
    ) -> bool:
        """Create or overwrite a file (imports); False when it already held exactly `text`."""
        scope = parse_scope(scope)
        norm = self._file_path(path)
        check_content(text, norm, self.limits)
        with self._tx():
            current = self._content(scope, norm)
            if current == text:
                return False
            if current is None:
                self._check_creatable(scope, norm)
                self._insert(scope, norm, text, op, author)
            else:
                self._update(scope, norm, text, op, author)
        return True

    def history(self, path: str = ROOT, *, scope: str = GLOBAL, limit: int = 50) -> list[Revision]:
        """Revisions of a file (back through its renames), or of everything below a
        directory (deleted files included), newest first."""
        return file_history.history(self.conn, path, scope=scope, limit=limit)

    def revision(self, path: str, rev: int, *, scope: str = GLOBAL) -> Revision:
        """One revision, with its content."""
        return file_history.revision(self.conn, path, rev, scope=scope)

    def prune(self, older_than_s: float) -> int:
        """Forget revisions older than `older_than_s` seconds, except each live file's
        current one. Files deleted before then can no longer be restored."""
        with self._tx():
            return file_history.prune(self.conn, self.clock() - older_than_s)

    def search(
        self,
        query: str,
        *,
        scopes: Sequence[str] | None = None,
        prefix: str = ROOT,
        limit: int = 10,
    ) -> list[SearchHit]:
        """Files matching every word of `query`, best first (see memory.file_search)."""
        return file_search.search(self.conn, query, scopes=scopes, prefix=prefix, limit=limit)

    def restore(self, path: str, rev: int, *, scope: str = GLOBAL, author: str = CLIENT) -> str:
        """Bring back the content of revision `rev` (also for a deleted file); the restore is
        itself a new revision, so it can be undone."""
        old = self.revision(path, rev, scope=scope)
        if old.content is None:
            raise MemoryFileError(
                f"revision {rev} of {old.path} is a {old.op} that left no content there; "
                "restore the revision before it"
            )
        with self._tx():
            current = self._content(old.scope, old.path)
            if current is None:
                self._check_creatable(old.scope, old.path)
                self._insert(
                    old.scope, old.path, old.content, "restore", author, detail=f"rev {rev}"
                )
            else:
                self._update(
                    old.scope, old.path, old.content, "restore", author, detail=f"rev {rev}"
                )
        return f"Restored {old.path} to revision {rev}"

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _file_path(self, path: str) -> str:
        norm = normalize_path(path, self.limits)
        if norm == ROOT:
            raise MemoryPathError(
                "/memories is the memory directory itself: give a file path like /memories/notes.md"
            )
        return norm

    def _content(self, scope: str, path: str) -> str | None:
        row = self.conn.execute(
            "SELECT content FROM memory_files WHERE scope = ? AND path = ?", (scope, path)
        ).fetchone()
        return None if row is None else str(row[0])

    def _is_dir(self, scope: str, path: str) -> bool:
        if path == ROOT:
            return True
        lo, hi = under(path)
        return (
            self.conn.execute(
                "SELECT 1 FROM memory_files WHERE scope = ? AND path >= ? AND path < ? LIMIT 1",
                (scope, lo, hi),
            ).fetchone()
            is not None
        )

    def _existing_file(self, scope: str, path: str) -> str:
        content = self._content(scope, path)
        if content is None:
            if self._is_dir(scope, path):
                raise MemoryFileError(f"The path {path} is not a file.")
            raise MemoryNotFound(path)
        return content

    def _check_creatable(self, scope: str, path: str) -> None:
        if self._is_dir(scope, path):
            raise MemoryFileError(f"The path {path} is a directory; give a file path below it")
        for d in parent_dirs(path):
            if self._content(scope, d) is not None:
                raise MemoryFileError(f"Cannot create {path}: {d} is a file, not a directory")

    def _next_rev(self, scope: str, path: str) -> int:
        row = self.conn.execute(
            "SELECT max(rev) FROM memory_revisions WHERE scope = ? AND path = ?", (scope, path)
        ).fetchone()
        return int(row[0] or 0) + 1

    def _revise(
        self, scope: str, path: str, op: str, author: str, content: str | None, detail: str | None
    ) -> tuple[int, float]:
        rev, now = self._next_rev(scope, path), self.clock()
        size = None if content is None else len(content.encode())
        self.conn.execute(
            "INSERT INTO memory_revisions (scope, path, rev, op, content, size, author, at, detail) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (scope, path, rev, op, content, size, author, now, detail),
        )
        return rev, now

    def _insert(
        self, scope: str, path: str, content: str, op: str, author: str, detail: str | None = None
    ) -> None:
        rev, now = self._revise(scope, path, op, author, content, detail)
        self.conn.execute(
            "INSERT INTO memory_files (scope, path, content, size, rev, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (scope, path, content, len(content.encode()), rev, now, now),
        )

    def _update(
        self, scope: str, path: str, content: str, op: str, author: str, detail: str | None = None
    ) -> None:
        rev, now = self._revise(scope, path, op, author, content, detail)
        self.conn.execute(
            "UPDATE memory_files SET content = ?, size = ?, rev = ?, updated_at = ? "
            "WHERE scope = ? AND path = ?",
            (content, len(content.encode()), rev, now, scope, path),
        )

    def _remove(self, scope: str, path: str, op: str, author: str, detail: str | None) -> None:
        self._revise(scope, path, op, author, None, detail)
        self.conn.execute("DELETE FROM memory_files WHERE scope = ? AND path = ?", (scope, path))

    def _listing(self, scope: str, path: str) -> str:
        lo, hi = under(path)
        rows = self.conn.execute(
            "SELECT path, size FROM memory_files WHERE scope = ? AND path >= ? AND path < ?",
            (scope, lo, hi),
        ).fetchall()
        return render_listing(path, rows)
