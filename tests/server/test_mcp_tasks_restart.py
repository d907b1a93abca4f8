"""A task survives its server: `tutti serve` (a real stdio subprocess) starts a workflow
as a 2025-11-25 task and is SIGKILLed mid-run; a new server on the same database answers
`tasks/get` for the same task id, resumes the run (committed steps are not run again), and
`tasks/result` gives the finished run's result.

The workflow and its marker files are tests/test_durability.py's: each shell step appends a
line to its own marker file when it starts, so line counts count executions."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import pytest

from tests.server.tasks_support import raw, start_task_v1
from tests.server.test_serve_stdio import (
    RUN_S,
    kill_step_processes,
    serve,
    stopped_state,
)
from tests.test_durability import DEPS, counts, workflow_yaml

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform == "win32", reason="signals and sh"),
]
RUN_ID = "tutti/runId"


async def test_a_task_whose_server_was_killed_finishes_under_the_next_server(
    tmp_path: Path,
) -> None:
    db, marks = tmp_path / "tutti.db", tmp_path / "marks"
    marks.mkdir()
    spec = {"spec": workflow_yaml(), "inputs": {"marks": str(marks)}}
    try:
        async with serve(db, tmp_path, "killed") as srv:
            created = await start_task_v1(srv.client, "workflow_start", spec)
            tid, rid = created["task"]["taskId"], created["_meta"][RUN_ID]
            with anyio.fail_after(RUN_S):  # long-polls (server-side waits) until mid-run
                while True:
                    state = await srv.call("workflow_status", {"run_id": rid, "wait_s": 10})
                    done = [s for s, st in state["steps"].items() if st == "succeeded"]
                    if len(done) >= 2 and "running" in state["steps"].values():
                        break
            srv.process.send_signal(signal.SIGKILL)
            assert await srv.exited() == -signal.SIGKILL
        committed = stopped_state(db, rid).checkpointed
        assert 2 <= len(committed) < len(DEPS)

        async with serve(db, tmp_path, "next") as srv:
            got = await raw(srv.client, "tasks/get", {"taskId": tid})
            with anyio.fail_after(RUN_S):
                result = await raw(srv.client, "tasks/result", {"taskId": tid})
            final = await raw(srv.client, "tasks/get", {"taskId": tid})
    finally:
        kill_step_processes(marks)  # the steps running at the kill outlive the server

    assert got["status"] == "working", got
    assert got["statusMessage"].startswith("resumed after its server stopped"), got
    assert final["status"] == "completed"
    answer = result["structuredContent"]
    assert answer["run_id"] == rid and answer["status"] == "succeeded", answer
    assert answer["outputs"]["final"].startswith("final-out[a-out[],z-out[],b1-out[a-out[]]")
    after = counts(marks)
    assert {s: after[s] for s in committed} == dict.fromkeys(committed, 1)  # not run again
    assert all(1 <= n <= 2 for n in after.values()), after
