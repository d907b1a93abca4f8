"""The memory store for async code (the MCP server, prompt-step agents)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from tutti_mcp.memory.connection import Database
from tutti_mcp.memory.files.memory_tool import run_command
from tutti_mcp.memory.files.paths import GLOBAL, Limits
from tutti_mcp.memory.files.store import CLIENT, MemoryFiles

if TYPE_CHECKING:
    from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

P = ParamSpec("P")
T = TypeVar("T")


class AsyncMemoryFiles:
    """The memory store for async code: each call runs whole on the connection's thread,
    so it never interleaves with the run store's commits on the same connection."""

    def __init__(self, db: Database, *, limits: Limits | None = None) -> None:
        self._db = db
        self.files = MemoryFiles(db.sqlite, limits=limits)

    @classmethod
    def of(cls, store: SqliteRunStore, *, limits: Limits | None = None) -> AsyncMemoryFiles:
        """Share a SqliteRunStore's connection (and database)."""
        return cls(store.db, limits=limits)

    @classmethod
    async def open(cls, path: str | Path, *, limits: Limits | None = None) -> AsyncMemoryFiles:
        return cls(await Database.open(path), limits=limits)

    async def close(self) -> None:
        await self._db.close()

    async def run(
        self, fn: Callable[Concatenate[MemoryFiles, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`await mem.run(MemoryFiles.create, path, text, scope=..., author=...)`"""
        return await self._db.run(fn, self.files, *args, **kwargs)

    async def execute(
        self, command: Mapping[str, Any], *, scope: str = GLOBAL, author: str = CLIENT
    ) -> str:
        return await self.run(run_command, command, scope=scope, author=author)
