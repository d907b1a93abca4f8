"""Two `tutti serve` processes on one database, each driven by its own MCP client at the
same time, write the same memory files through the `memory` tool: no update is lost."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from tests.server.test_serve_stdio import Served, serve
from tutti_mcp.memory.files.store import MemoryFiles

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform == "win32", reason="stdio subprocesses"),
]

N = 40  # changes per server


async def memory(srv: Served, **args: object) -> tuple[bool, str]:
    with anyio.fail_after(20):
        res = await srv.client.call_tool("memory", dict(args))
    text = "".join(c.text for c in res.content if isinstance(c, types.TextContent))
    return not res.is_error, text


async def write(srv: Served, name: str) -> int:
    """N lines prepended to the log and N increments of the counter (read, then replace
    exactly what was read; a lost race is read again). Returns the races lost."""
    lost = 0
    for i in range(N):
        ok, text = await memory(
            srv, command="insert", path="/memories/log.md", insert_line=0, insert_text=f"{name}-{i}"
        )
        assert ok, text
        for _ in range(100):  # bounded: each lost race means the other server made progress
            ok, text = await memory(srv, command="view", path="/memories/counter.md")
            assert ok, text
            value = text.splitlines()[1].split("\t")[1]  # "count=<n>;": a prefix never matches
            ok, text = await memory(
                srv,
                command="str_replace",
                path="/memories/counter.md",
                old_str=value,
                new_str=f"count={int(value[6:-1]) + 1};",
            )
            if ok:
                break
            assert "did not appear verbatim" in text, text
            lost += 1
        else:
            raise AssertionError(f"{name} lost 100 races in a row")
    return lost


async def test_two_servers_writing_the_same_files_lose_no_update(tmp_path: Path) -> None:
    db = tmp_path / "tutti.db"
    seed = MemoryFiles.open(db)
    seed.create("/memories/log.md", "")
    seed.create("/memories/counter.md", "count=0;")
    async with (
        serve(db, tmp_path, "one") as one,
        serve(db, tmp_path, "two") as two,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(write, one, "one")
        tg.start_soon(write, two, "two")

    lines = seed.read("/memories/log.md").splitlines()
    assert sorted(lines) == sorted(f"{w}-{i}" for w in ("one", "two") for i in range(N))
    assert seed.read("/memories/counter.md") == f"count={2 * N};"
    writers = [line.split("-")[0] for line in lines]
    assert sum(a != b for a, b in itertools.pairwise(writers)) > 1, "the servers never overlapped"
    assert len(seed.history("/memories/counter.md", limit=500)) == 2 * N + 1
