"""The memory store for async code (the MCP server, prompt-step agents)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from tutti_mcp.memory.files import CLIENT, MemoryFiles
from tutti_mcp.memory.memory_tool import run_command
from tutti_mcp.memory.paths import GLOBAL, Limits

P = ParamSpec("P")
T = TypeVar("T")


class AsyncMemoryFiles:
    """The memory store for async code: each call runs whole on the aiosqlite connection's
    thread, so it never interleaves with the run store's commits on the same connection."""

    def __init__(self, conn: aiosqlite.Connection, *, limits: Limits | None = None) -> None:
        self._aconn = conn
        self.files = MemoryFiles(conn._conn, limits=limits)

    @classmethod
    def of(cls, store: Any, *, limits: Limits | None = None) -> AsyncMemoryFiles:
        """Share a SqliteRunStore's connection (and database)."""
        return cls(store._conn, limits=limits)

    @classmethod
    async def open(cls, path: str | Path, *, limits: Limits | None = None) -> AsyncMemoryFiles:
        from tutti_mcp.memory.rows import open_connection

        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return cls(await open_connection(path, 10_000), limits=limits)

    async def close(self) -> None:
        await self._aconn.close()

    async def run(
        self, fn: Callable[Concatenate[MemoryFiles, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`await mem.run(MemoryFiles.create, path, text, scope=..., author=...)`"""
        result: T = await self._aconn._execute(fn, self.files, *args, **kwargs)  # type: ignore[no-untyped-call]
        return result

    async def execute(
        self, command: Mapping[str, Any], *, scope: str = GLOBAL, author: str = CLIENT
    ) -> str:
        return await self.run(run_command, command, scope=scope, author=author)
