"""Child processes of the tools (`bash`, `grep`'s scan): none outlives its call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Process

from tutti_mcp.engine.executors.shell import _kill_group


@asynccontextmanager
async def reaped(process: Process) -> AsyncIterator[Process]:
    """`process` for the block; when the block ends (done, timed out, cancelled, failed)
    with the process still running, its whole group is killed (shielded), else it is
    closed."""
    try:
        yield process
    finally:
        if process.returncode is None:
            with anyio.CancelScope(shield=True):
                await _kill_group(process)
        else:
            await process.aclose()
