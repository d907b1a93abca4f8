"""`tutti serve --http` in a child process, for the tests that need a real HTTP server."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    url: str  # the MCP endpoint
    process: Process
    said: str  # what it printed on stderr until it was ready


@asynccontextmanager
async def serving_http(env: Mapping[str, str], cwd: Path) -> AsyncIterator[Served]:
    """The server on a free port of 127.0.0.1, once Uvicorn says it runs; killed after
    unless the test stopped it (callers bound the whole with anyio.fail_after)."""
    port = free_port()
    cmd = [sys.executable, "-m", "tutti_mcp", "serve", "--http", "--port", str(port)]
    async with await anyio.open_process(cmd, cwd=cwd, env=dict(env)) as process:
        try:
            assert process.stderr is not None
            said = ""
            async for chunk in TextReceiveStream(process.stderr):
                said += chunk
                if "Uvicorn running on" in said:
                    break
            yield Served(f"http://127.0.0.1:{port}/mcp", process, said)
        finally:
            if process.returncode is None:
                process.kill()
