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
EXIT_S = 5  # a stopped server's process ends
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
        assert isinstance(res.structured_content, dict), text
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
    tuple[
        MemoryObjectReceiveStream[SessionMessage | Exception],
        MemoryObjectSendStream[SessionMessage],
    ]
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
    alive is stopped as a client stops it (close stdin, wait, kill): no test leaves one
    behind."""
    stderr = workspace / f"{name}.stderr"
    with open(stderr, "wb") as err:
        process = await anyio.open_process(
            [sys.executable, "-m", "tutti_mcp", "serve"],
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
                assert process.stdin is not None
                with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await process.stdin.aclose()
                with anyio.move_on_after(EXIT_S):
                    await process.wait()
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
    state: DbState  # the database as the stop left it, before another server opened it


async def start_mid_run(srv: Served, marks: Path) -> tuple[str, dict[str, str]]:
    """Start the workflow and wait (workflow_status with wait_s) until at least two steps
    have succeeded while others run."""
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
        while state["status"] in ("pending", "running"):
            state = await srv.call("workflow_status", {"run_id": state["run_id"], "wait_s": 10})
    return state


def stopped_state(db: Path, run_id: str) -> DbState:
    state = read_state(db)
    assert state is not None and state.run_id == run_id, state
    return state


def events(db: Path, run_id: str) -> list[tuple[str, str | None, Any]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        rows = conn.execute(
            "SELECT kind, step_id, data FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [(k, s, None if d is None else json.loads(d)) for k, s, d in rows]


ORPHANED = ("run_interrupted", None, {"reason": "owner process gone"})


def step_processes(marks: Path) -> list[int]:
    """Live processes of this workflow's shell steps (found by their MARK variable)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with suppress(OSError):
                if f"MARK={marks}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
    return found


def kill_step_processes(marks: Path) -> None:
    for pid in step_processes(marks):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def resume_and_check(db: Path, tmp_path: Path, stopped: Stopped) -> None:
    """A new server lists the run interrupted and resumes it to success without running a
    committed step again; the outputs equal those of an uninterrupted run (started on the
    same server, alongside)."""
    committed = stopped.state.checkpointed
    before = counts(stopped.marks)
    succeeded_seen = {s for s, st in stopped.seen.items() if st == "succeeded"}
    running_seen = {s for s, st in stopped.seen.items() if st == "running"}
    assert succeeded_seen <= committed  # reported succeeded only once committed
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
        resumed = await srv.call("workflow_resume", {"run_id": stopped.run_id, "wait_s": 10})
        assert resumed["run_id"] == stopped.run_id
        assert resumed["forked_from"] is None
        assert set(resumed["kept"]) == committed
        resumed = await wait_finished(srv, resumed)
        clean = await wait_finished(srv, clean)
        result = await srv.call("workflow_result", {"run_id": stopped.run_id})
        expected = await srv.call("workflow_result", {"run_id": clean["run_id"]})

    assert resumed["status"] == "succeeded", resumed
    assert result["status"] == "succeeded", result
    assert {s["status"] for s in result["steps"].values()} == {"succeeded"}
    assert expected["status"] == "succeeded", expected
    assert counts(clean_marks) == dict.fromkeys(DEPS, 1)
    assert result["outputs"] == expected["outputs"]
    assert result["outputs"]["final"].startswith("final-out[a-out[],z-out[],b1-out[a-out[]]")

    after = counts(stopped.marks)
    assert {s: after[s] for s in committed} == dict.fromkeys(committed, 1)  # exactly once
    assert all(1 <= n <= 2 for n in after.values()), after  # at-least-once, never more
    twice = {s for s, n in after.items() if n == 2}
    assert twice.isdisjoint(committed)
    assert running_seen - committed <= twice  # interrupted mid-step: run again
    assert twice, "the stop interrupted a running step, which resume must run again"
    if stopped.state.run_status == "interrupted":
        # a graceful stop ended its steps: the marker counts before resuming were final
        started = {s for s, n in before.items() if n == 1}
        assert twice == started - committed


def check_recorded_interrupted(db: Path, stopped: Stopped) -> None:
    """The stopping server recorded the run itself, before any other process looked:
    interrupted, its running steps interrupted, every finished step committed, and no
    step process left behind."""
    state = stopped.state
    assert state.run_status == "interrupted", state
    assert "running" not in state.steps.values(), state.steps
    assert {s for s, st in state.steps.items() if st == "interrupted"}, state.steps
    assert {s for s, st in state.steps.items() if st == "succeeded"} == state.checkpointed
    assert ORPHANED not in events(db, stopped.run_id)
    assert step_processes(stopped.marks) == []


# -- the tests -------------------------------------------------------------------------------
async def test_sigkill_mid_run_then_a_new_server_resumes_it(tmp_path: Path) -> None:
    db, marks = tmp_path / "tutti.db", tmp_path / "marks"
    try:
        async with serve(db, tmp_path, "killed") as srv:
            run_id, seen = await start_mid_run(srv, marks)
            srv.process.send_signal(signal.SIGKILL)
            assert await srv.exited() == -signal.SIGKILL
        state = stopped_state(db, run_id)
        assert state.run_status == "running"  # nothing ran a shutdown: the row says running
        assert len(state.checkpointed) >= 2

        await resume_and_check(db, tmp_path, Stopped(run_id, marks, seen, state))
    finally:
        kill_step_processes(marks)  # the steps running at the kill outlive the server

    # the new server found the run orphaned at start-up and said so
    assert ORPHANED in events(db, run_id)


async def test_sigterm_mid_run_records_the_run_interrupted_and_exits(tmp_path: Path) -> None:
    db, marks = tmp_path / "tutti.db", tmp_path / "marks"
    async with serve(db, tmp_path, "terminated") as srv:
        run_id, seen = await start_mid_run(srv, marks)
        srv.process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(EXIT_S):
            await srv.process.wait()
        code_on_sigterm = srv.process.returncode
        state = stopped_state(db, run_id)
        if code_on_sigterm is None:  # still alive: let it go (closing stdin) to check the rest
            await srv.close_stdin()
            await srv.exited()
    stopped = Stopped(run_id, marks, seen, state)
    check_recorded_interrupted(db, stopped)
    await resume_and_check(db, tmp_path, stopped)

    assert code_on_sigterm == 0, (
        f"tutti serve had not exited {EXIT_S}s after SIGTERM (its stdin still open); "
        f"stderr:\n{srv.log()}"
    )


async def test_client_closing_stdin_mid_run_records_the_run_interrupted(tmp_path: Path) -> None:
    db, marks = tmp_path / "tutti.db", tmp_path / "marks"
    async with serve(db, tmp_path, "disconnected") as srv:
        run_id, seen = await start_mid_run(srv, marks)
        await srv.close_stdin()
        assert await srv.exited() == 0, srv.log()
    stopped = Stopped(run_id, marks, seen, stopped_state(db, run_id))
    check_recorded_interrupted(db, stopped)
    await resume_and_check(db, tmp_path, stopped)


async def test_workflow_resume_without_waiting_answers_that_the_run_is_running(
    tmp_path: Path,
) -> None:
    """workflow_resume(wait_s=0) has launched the run: its answer must not still say
    `interrupted` and tell the caller to call workflow_resume again (which fails: the run
    is already running in this process)."""
    db = tmp_path / "tutti.db"
    spec = {"name": "slow", "steps": [{"id": "nap", "argv": ["sh", "-c", "sleep 30"]}]}
    async with serve(db, tmp_path, "first") as srv:
        started = await srv.call("workflow_start", {"spec": spec})
        await srv.close_stdin()
        assert await srv.exited() == 0, srv.log()
    run_id = started["run_id"]

    async with serve(db, tmp_path, "second") as srv:
        resumed = await srv.call("workflow_resume", {"run_id": run_id})
        status = await srv.call("workflow_status", {"run_id": run_id})
        assert status["status"] == "running", status  # it was launched
        again = await srv.client.call_tool("workflow_resume", {"run_id": run_id})
        assert again.is_error  # as the answer below advises, but the run is running
        await srv.call("workflow_cancel", {"run_id": run_id})

    assert resumed["status"] == "running", resumed
    assert "workflow_resume" not in resumed["next"], resumed["next"]
