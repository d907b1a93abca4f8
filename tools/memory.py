"""The memory tools as plain functions over the memory store: `memory` (the six commands of
Anthropic's memory tool, answered with the store's own text), `memory_search` and
`memory_history`. `tools.memory_mcp` registers them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.files.history import Revision
from tutti_mcp.memory.files.paths import (
    GLOBAL,
    ROOT,
    MemoryFileError,
    MemoryNotFound,
    normalize_path,
    parse_scope,
)
from tutti_mcp.memory.files.store import CLIENT, MemoryFiles

SEARCH_LIMIT = 50
HISTORY_LIMIT = 200


class MemoryHit(BaseModel):
    scope: str
    path: str
    snippet: str  # matches in **bold**
    score: float  # higher is better


class MemorySearch(BaseModel):
    hits: list[MemoryHit]
    next: str


class MemoryRevision(BaseModel):
    path: str
    rev: int
    op: str
    author: str
    at: str  # ISO-8601, UTC
    size: int | None = None  # bytes after the change; null: it removed the file
    detail: str | None = None


class MemoryHistory(BaseModel):
    revisions: list[MemoryRevision]
    content: str | None = None  # the revision's text, when one was asked for
    next: str


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _scope_arg(scope: str) -> str:
    return "" if scope == GLOBAL else f", scope={scope!r}"


def not_found_hint(exc: MemoryNotFound, scope: str) -> str:
    """The store's message, and where to look instead."""
    said = str(exc).rstrip(".")
    where = f" (scope {scope})" if scope != GLOBAL else ""
    return f"{said}. View {ROOT}{where} to list the files, or call memory_search."


async def command(
    mem: AsyncMemoryFiles,
    fields: Mapping[str, Any],
    *,
    scope: str = GLOBAL,
    author: str = CLIENT,
) -> str:
    """Carry out one memory-tool command ({"command": "view", "path": ...}; fields left
    out or None are absent); the answer is the text the memory tool gives."""
    given = {k: v for k, v in fields.items() if v is not None}
    return await mem.execute(given, scope=scope, author=author)


async def search(
    mem: AsyncMemoryFiles,
    query: str,
    *,
    scope: str | None = None,
    prefix: str = ROOT,
    limit: int = 10,
) -> MemorySearch:
    """Files matching the query, best first, in one scope or (scope None) in all."""
    scopes = None if scope is None else [parse_scope(scope)]
    limit = max(1, min(limit, SEARCH_LIMIT))
    hits = await mem.run(MemoryFiles.search, query, scopes=scopes, prefix=prefix, limit=limit)
    where = f" in scope {scope}" if scope is not None else ""
    if not hits:
        nxt = (
            f"No memory file matches{where}. Try fewer or other words"
            + (", or leave out scope to search every scope" if scope is not None else "")
            + f", or view {ROOT} to browse."
        )
    else:
        nxt = "memory(command='view', path=<its path>, scope=<its scope>) reads a hit in full."
    return MemorySearch(
        hits=[
            MemoryHit(scope=h.scope, path=h.path, snippet=h.snippet, score=float(f"{h.score:.4g}"))
            for h in hits
        ],
        next=nxt,
    )


def _revision(r: Revision) -> MemoryRevision:
    return MemoryRevision(
        path=r.path, rev=r.rev, op=r.op, author=r.author, at=iso(r.at), size=r.size, detail=r.detail
    )


async def history(
    mem: AsyncMemoryFiles,
    path: str = ROOT,
    *,
    scope: str = GLOBAL,
    limit: int = 20,
    rev: int | None = None,
    restore: bool = False,
    author: str = CLIENT,
) -> MemoryHistory:
    """Revisions of a file or of everything below a directory, newest first; with `rev`,
    that revision and its text; with `rev` and `restore`, bring that revision back."""
    scope = parse_scope(scope)
    if restore:
        if rev is None:
            raise MemoryFileError(
                f"restore needs `rev`: call memory_history(path={path!r}{_scope_arg(scope)}) "
                "to list the revisions and pick one"
            )
        return await _restore(mem, path, rev, scope, author)
    if rev is not None:
        one = await mem.run(MemoryFiles.revision, path, rev, scope=scope)
        if one.content is None:
            nxt = f"Revision {rev} removed the file; an earlier revision holds its text."
        else:
            nxt = (
                f"memory_history(path={one.path!r}, rev={rev}, restore=true{_scope_arg(scope)}) "
                "brings this text back (as a new revision, so it can be undone)."
            )
        return MemoryHistory(revisions=[_revision(one)], content=one.content, next=nxt)
    limit = max(1, min(limit, HISTORY_LIMIT))
    revs = await mem.run(MemoryFiles.history, path, scope=scope, limit=limit)
    if not revs:
        nxt = (
            f"Nothing was ever written at {path} in scope {scope}. memory_search looks in "
            "every scope."
        )
    else:
        nxt = (
            "Add rev=N to read a revision; rev=N with restore=true brings it back (deleted "
            "files too)."
        )
        norm = normalize_path(path)
        if any(r.path != norm and not r.path.startswith(norm + "/") for r in revs):
            nxt += (
                f" Revisions at another path are those of {norm} under an earlier name (it "
                "was renamed): pass that path with rev=N."
            )
    return MemoryHistory(revisions=[_revision(r) for r in revs], next=nxt)


async def _restore(
    mem: AsyncMemoryFiles, path: str, rev: int, scope: str, author: str
) -> MemoryHistory:
    norm = normalize_path(path)

    def restore(files: MemoryFiles) -> tuple[list[Revision], Revision]:
        before = files.history(norm, scope=scope, limit=1)
        files.restore(norm, rev, scope=scope, author=author)
        return before, files.history(norm, scope=scope, limit=1)[0]

    before, after = await mem.run(restore)
    if before and before[0].size is not None:
        undo = (
            f"memory_history(path={norm!r}, rev={before[0].rev}, restore=true{_scope_arg(scope)})"
        )
    else:  # the file did not exist before the restore
        undo = f"memory(command='delete', path={norm!r}{_scope_arg(scope)})"
    return MemoryHistory(
        revisions=[_revision(after)],
        next=f"Restored {norm} to revision {rev} as revision {after.rev}. To undo: {undo}.",
    )
