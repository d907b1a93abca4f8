"""`tutti serve` as a real stdio subprocess, stopped in the middle of a run three ways:
SIGKILL (a crash), SIGTERM (a graceful stop) and the client closing stdin (a disconnect).
In each case a new server on the same database shows the run `interrupted`, resumes it
without running a committed step again, and ends with the outputs of a run that was
never interrupted.

The workflow and its marker files come from tests/test_durability.py: each shell step
appends a line to its own marker file when it starts, so line counts count executions.

The test spawns the server itself (rather than through `mcp.client.stdio`) so that it
holds the process: to signal it, close its stdin, and see how and when it exited."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.text import TextReceiveStream
from mcp.client import Client
from mcp.shared.message import SessionMessage

from tests.test_durability import DEPS, ROOT, DbState, cli_env, counts, read_state, workflow_yaml

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform == "win32", reason="signals, /proc and sh"),
]

START_S = 20  # a server starts and answers its first call
EXIT_S = 10  # a stopped server's process ends
RUN_S = 30  # a run gets to where the test wants it


# -- a server process and a client over its stdin/stdout ------------------------------------
@dataclass
class Served:
    process: Process
    client: Client
    stderr: Path

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        with anyio.fail_after(START_S):  # the waits asked for are 10 s
            res = await self.client.call_tool(tool, args or {})
        text = "".join(c.text for c in res.content if isinstance(c, types.TextContent))
        assert not res.is_error, f"{tool}: {text}"
        assert res.structured_content is not None, text
        return res.structured_content

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def exited(self) -> int:
        """The exit code, once the process has ended on its own (bounded)."""
        with anyio.fail_after(EXIT_S):
            return await self.process.wait()

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


@asynccontextmanager
async def pipes(
    process: Process,
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """An MCP client transport over the process's stdout and stdin: newline-delimited
    JSON-RPC, as `mcp.client.stdio` frames it. Leaving it does not stop the process."""
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout
    to_client, from_server = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    to_server, from_client = anyio.create_memory_object_stream[SessionMessage](0)

    async def read() -> None:
        async with to_client:
            buffer = ""
            with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                async for chunk in TextReceiveStream(stdout):
                    *lines, buffer = (buffer + chunk).split("\n")
                    for line in lines:
                        if line.strip():
                            msg = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                            await to_client.send(SessionMessage(msg))

    async def write() -> None:
        async with from_client:
            with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                async for message in from_client:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await stdin.send((data + "\n").encode())

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        tg.start_soon(write)
        try:
            yield from_server, to_server
        finally:
            tg.cancel_scope.cancel()
            from_server.close()
            to_server.close()


def serve_env(db: Path, workspace: Path) -> dict[str, str]:
    return {
        **cli_env(),  # no ANTHROPIC_* or TUTTI_* from the caller
        "TUTTI_DB": str(db),
        "TUTTI_ALLOW_SHELL": "sh",
        "TUTTI_WORKSPACE": str(workspace),
    }


@asynccontextmanager
async def serve(db: Path, workspace: Path, name: str) -> AsyncIterator[Served]:
    """`tutti serve` on `db`, connected and initialized. On the way out a process still
    alive is stopped (SIGKILL) so that no test leaves one behind."""
    stderr = workspace / f"{name}.stderr"
    with open(stderr, "wb") as err:
        process = await anyio.open_process(
            [sys.executable, "-m", "server.cli", "serve"],
            cwd=ROOT,
            env=serve_env(db, workspace),
            stderr=err,
        )
    try:
        # the handshake and every request are bounded by read_timeout_seconds
        async with Client(pipes(process), mode="legacy", read_timeout_seconds=START_S) as client:
            yield Served(process, client, stderr)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            with anyio.move_on_after(EXIT_S):
                await process.wait()
            await process.aclose()


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Stopped:
    run_id: str
    marks: Path
    seen: dict[str, str]  # step statuses in the last answer before the stop
    state: DbState  # the database right after the process ended


async def start_mid_run(srv: Served, marks: Path) -> tuple[str, dict[str, str]]:
    """Start the workflow and wait (workflow_status with wait_s) until at least two steps
    are committed while others run."""
    marks.mkdir()
    state = await srv.call(
        "workflow_start", {"spec": workflow_yaml(), "inputs": {"marks": str(marks)}}
    )
    run_id = state["run_id"]
    with anyio.fail_after(RUN_S):
        while True:
            steps = state["steps"]
            succeeded = [s for s, st in steps.items() if st == "succeeded"]
            if len(succeeded) >= 2 and "running" in steps.values():
                return run_id, steps
            assert state["status"] == "running", state
            state = await srv.call("workflow_status", {"run_id": run_id, "wait_s": 10})


async def wait_finished(srv: Served, state: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(RUN_S):
        while state["status"] == "running":
            state = await srv.call("workflow_status", {"run_id": state["run_id"], "wait_s": 10})
    return state


def events(db: Path, run_id: str) -> list[tuple[str, str | None, Any]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        rows = conn.execute(
            "SELECT kind, step_id, data FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [(k, s, None if d is None else json.loads(d)) for k, s, d in rows]


async def resume_and_check(db: Path, tmp_path: Path, stopped: Stopped) -> None:
    """A new server lists the run interrupted, resumes it to success without running a
    committed step again, and ends with the outputs of an uninterrupted run (started on
    the same server, alongside)."""
    committed = stopped.state.checkpointed
    before = counts(stopped.marks)
    assert len(committed) >= 2
    assert committed != set(DEPS)
    assert all(before[s] == 1 for s in committed), before

    async with serve(db, tmp_path, "resumer") as srv:
        listed = await srv.call("workflow_list")
        assert [(r["run_id"], r["status"]) for r in listed["runs"]] == [
            (stopped.run_id, "interrupted")
        ]
        clean_marks = tmp_path / "clean-marks"
        clean_marks.mkdir()
        clean = await srv.call(
            "workflow_start", {"spec": workflow_yaml(), "inputs": {"marks": str(clean_marks)}}
        )
        resumed = await srv.call("workflow_resume", {"run_id": stopped.run_id})
        assert resumed["run_id"] == stopped.run_id
        assert resumed["forked_from"] is None
        assert set(resumed["kept"]) == committed
        finished = await wait_finished(srv, resumed)
        clean = await wait_finished(srv, clean)
        result = await srv.call("workflow_result", {"run_id": stopped.run_id})
        expected = await srv.call("workflow_result", {"run_id": clean["run_id"]})

    assert finished["status"] == "succeeded", finished
    assert result["status"] == "succeeded", result
    assert expected["status"] == "succeeded", expected
    assert {s["status"] for s in result["steps"].values()} == {"succeeded"}
    assert result["outputs"] == expected["outputs"]
    assert result["outputs"]["final"].startswith("final-out[a-out[],z-out[],b1-out[a-out[]]")

    after = counts(stopped.marks)
    assert {s: after[s] for s in committed} == dict.fromkeys(committed, 1)  # exactly once
    assert all(1 <= n <= 2 for n in after.values()), after  # at-least-once, never more
    twice = {s for s, n in after.items() if n == 2}
    started = {s for s, n in before.items() if n == 1}
    assert twice == started - committed  # what had started but not committed ran again
    assert twice, "the stop interrupted a running step, which resume must run again"
    assert counts(clean_marks) == dict.fromkeys(DEPS, 1)


def kill_leftovers(marks: Path) -> None:
    """Steps a SIGKILLed server left behind (they run in their own process groups)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with suppress(OSError):
            environ = (proc / "environ").read_bytes().split(b"\0")
            if f"MARK={marks}".encode() in environ:
                with suppress(ProcessLookupError):
                    os.killpg(int(proc.name), signal.SIGKILL)


# -- the tests -------------------------------------------------------------------------------
async def test_sigkill_mid_run_then_a_new_server_resumes_it(tmp_path: Path) -> None:
    db, marks = tmp_path / "tutti.db", tmp_path / "marks"
    try:
        async with serve(db, tmp_path, "killed") as srv:
            run_id, seen = await start_mid_run(srv, marks)
            srv.process.send_signal(signal.SIGKILL)
            assert await srv.exited() == -signal.SIGKILL
        state = read_state(db)
        assert state is not None and state.run_id == run_id
        # nothing ran the shutdown: the row still says running, with a dead owner
        assert state.run_status == "running"
        succeeded_seen = {s for s, st in seen.items() if st == "succeeded"}
        assert succeeded_seen <= state.checkpointed  # reported succeeded only once committed

        await resume_and_check(db, tmp_path, Stopped(run_id, marks, seen, state))
    finally:
        kill_leftovers(marks)

    # the new server found the run orphaned at start-up and said so
    log = events(db, run_id)
    assert ("run_interrupted", None, {"reason": "owner process gone"}) in log


async def test_sigterm_mid_run_records_the_run_interrupted(tmp_path: Path) -> None:
    db, marks = tmp_path / "tutti.db", tmp_path / "marks"
    async with serve(db, tmp_path, "terminated") as srv:
        run_id, seen = await start_mid_run(srv, marks)
        srv.process.send_signal(signal.SIGTERM)
        code = await srv.exited()
        assert code == 0, srv.log()
    await check_stopped_gracefully(db, tmp_path, Stopped(run_id, marks, seen, read_state(db)))  # type: ignore[arg-type]


async def test_client_closing_stdin_mid_run_records_the_run_interrupted(tmp_path: Path) -> None:
    db, marks = tmp_path / "tutti.db", tmp_path / "marks"
    async with serve(db, tmp_path, "disconnected") as srv:
        run_id, seen = await start_mid_run(srv, marks)
        await srv.close_stdin()
        code = await srv.exited()
        assert code == 0, srv.log()
    await check_stopped_gracefully(db, tmp_path, Stopped(run_id, marks, seen, read_state(db)))  # type: ignore[arg-type]


async def check_stopped_gracefully(db: Path, tmp_path: Path, stopped: Stopped) -> None:
    """The server recorded the run itself (before any other process looked at the
    database): interrupted, its running steps interrupted, every finished step committed."""
    state = stopped.state
    assert state is not None and state.run_id == stopped.run_id
    assert state.run_status == "interrupted"
    assert "running" not in state.steps.values(), state.steps
    interrupted = {s for s, st in state.steps.items() if st == "interrupted"}
    assert interrupted, state.steps
    assert {s for s, st in state.steps.items() if st == "succeeded"} == state.checkpointed
    succeeded_seen = {s for s, st in stopped.seen.items() if st == "succeeded"}
    assert succeeded_seen <= state.checkpointed
    # the running steps were stopped, not left behind: nothing started after the stop
    log = events(db, stopped.run_id)
    assert ("run_interrupted", None, {"reason": "owner process gone"}) not in log

    await resume_and_check(db, tmp_path, stopped)
