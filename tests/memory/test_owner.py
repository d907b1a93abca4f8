"""Whether a run's owner is alive: a process that has exited is dead even while it is a
zombie nobody has reaped (as where PID 1 does not reap, in a container without an init).

The zombie here is real: a helper process forks a child, lets it exit and never reaps it.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.owner import _stat, current_owner, owner_alive
from tutti_mcp.memory.runs.records import RunStatus, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and fork"),
]

# Forks a child that exits when told (a line on stdin), waits until it has exited without
# reaping it (WNOWAIT), says so, and stays alive until its stdin closes: the child stays a
# zombie all that time.
PARENT = """
import os, sys
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os._exit(0)
os.close(r)
print(pid, flush=True)
sys.stdin.readline()
os.close(w)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print("exited", flush=True)
sys.stdin.readline()
"""


async def read_line(process: Process) -> str:
    assert process.stdout is not None
    data = b""
    while not data.endswith(b"\n"):
        data += await process.stdout.receive(1)
    return data.decode().strip()


@asynccontextmanager
async def zombie_owner() -> AsyncIterator[tuple[str, int]]:
    """The owner string of a live process (as `current_owner` wrote it there), which has
    become a zombie by the time this yields; with its pid."""
    async with await anyio.open_process([sys.executable, "-c", PARENT]) as parent:
        try:
            with anyio.fail_after(20):
                pid = int(await read_line(parent))
                owner = f"{socket.gethostname()}:{pid}:{_stat(pid)[19]}"
                assert owner_alive(owner)  # a live process
                assert parent.stdin is not None
                await parent.stdin.send(b"exit\n")
                assert await read_line(parent) == "exited"
            assert _stat(pid)[0] == "Z"  # exited, not reaped: a zombie
            yield owner, pid
        finally:
            parent.kill()  # its zombie child goes to init, which reaps it


async def test_a_zombie_process_is_not_a_live_owner() -> None:
    async with zombie_owner() as (owner, _pid):
        assert not owner_alive(owner)
    assert owner_alive(current_owner())


async def test_a_run_owned_by_a_zombie_is_an_orphan_and_resumes_at_once(tmp_path: Path) -> None:
    spec = {
        "name": "zombie-owned",
        "steps": [{"id": "a", "args": "A"}, {"id": "b", "args": "${a.output}B"}],
    }
    async with (
        zombie_owner() as (owner, _pid),
        await SqliteRunStore.open(tmp_path / "runs.db") as store,
    ):
        config = EngineConfig(workspace=tmp_path)
        creator = Engine(store, {ExecutorKind.BUILTIN: BuiltinExecutor()}, config)
        first, second = await creator.create_run(spec), await creator.create_run(spec)
        for run_id in (first, second):
            await store.set_run(run_id, status=RunStatus.RUNNING, owner=owner)

        # a resume takes a run marked running by the zombie at once
        resumer = Engine(store, {ExecutorKind.BUILTIN: BuiltinExecutor()}, config)
        run = await resumer.resume(first)
        assert run.status is RunStatus.SUCCEEDED, run.error
        assert {s.step_id: (s.status, s.output) for s in run.steps.values()} == {
            "a": (StepStatus.SUCCEEDED, "A"),
            "b": (StepStatus.SUCCEEDED, "AB"),
        }
        # and the orphan check at start-up finds the other one
        assert await store.mark_orphans_interrupted() == [second]
        assert (await store.load_run(second)).status is RunStatus.INTERRUPTED
