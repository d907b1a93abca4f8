"""Two resumers of one run, started together: exactly one runs it, and no step runs twice;
the other is told that the run is running elsewhere.

In process: two engines, each with its own connection to the same file, race `resume`
in many rounds. Across processes: two processes run the `tutti resume RUN` command
(server.cli.main) at the same moment, round after round; each step's shell command
appends to its own marker file, so line counts count executions."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.line_process import LineProcess, kill_if_running
from tests.test_durability import ROOT, cli_env
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import RunStateError
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.supervisor import RunSupervisor
from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

IN_PROCESS_ROUNDS = 200
PROCESS_ROUNDS = 20
ROUND_S = 30  # one round's two resumes have ended

# our own pid with another start time: a process that is gone (its pid since reused)
DEAD_OWNER = f"{socket.gethostname()}:{os.getpid()}:1"
RUNNING_ELSEWHERE = "is running in another process"
RUNNING_HERE = "is already running in this process"  # two engines of one process


def interrupted_as(round_no: int) -> dict[str, Any]:
    """How round `round_no` leaves its run: recorded interrupted, or still marked running
    by a process that has died (nothing has looked at it since)."""
    if round_no % 2:
        return {"status": RunStatus.RUNNING, "owner": DEAD_OWNER}
    return {"status": RunStatus.INTERRUPTED, "owner": None}


# -- in process --------------------------------------------------------------------------------
class CountingExecutor(BuiltinExecutor):
    """The builtin executor, counting executions per (run, step) across engines."""

    def __init__(self, counts: Counter[tuple[str, str]]) -> None:
        self.counts = counts

    async def execute(self, call: StepCall) -> StepOutcome:
        self.counts[(call.run_id, call.step.id)] += 1
        return await super().execute(call)


SPEC = {
    "name": "raced",
    "steps": [
        {"id": "a", "args": "a"},
        {"id": "b", "args": "${a.output}b", "depends_on": ["a"]},
        {"id": "c", "args": "${a.output}c", "depends_on": ["a"]},
    ],
}


async def race(engines: list[Engine], run_id: str) -> tuple[list[RunRecord], list[str]]:
    """Resume `run_id` with each engine at once: the records of those that ran it and
    the errors of those refused."""
    won: list[RunRecord] = []
    lost: list[str] = []

    async def resume(engine: Engine) -> None:
        try:
            won.append(await engine.resume(run_id))
        except RunStateError as exc:
            lost.append(str(exc))

    with anyio.fail_after(ROUND_S):
        async with anyio.create_task_group() as tg:
            for engine in engines:
                tg.start_soon(resume, engine)
    return won, lost


async def test_two_engines_resuming_one_run_together_run_it_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    counts: Counter[tuple[str, str]] = Counter()
    refusals: list[str] = []
    async with (
        await SqliteRunStore.open(db) as store_a,
        await SqliteRunStore.open(db) as store_b,
    ):
        config = EngineConfig(workspace=tmp_path)
        racers = [
            Engine(store, {ExecutorKind.BUILTIN: CountingExecutor(counts)}, config)
            for store in (store_a, store_b)
        ]
        creator = Engine(store_a, {ExecutorKind.BUILTIN: BuiltinExecutor()}, config)
        for n in range(IN_PROCESS_ROUNDS):
            run_id = await creator.create_run(SPEC)
            await store_a.set_run(run_id, **interrupted_as(n))
            won, lost = await race(racers, run_id)
            assert len(won) == 1 and len(lost) == 1, (n, won, lost)
            assert won[0].status is RunStatus.SUCCEEDED, won[0].error
            refusals += lost
            ran = {sid: counts[(run_id, sid)] for sid in ("a", "b", "c")}
            assert ran == {"a": 1, "b": 1, "c": 1}, (n, ran)
    # Refused because the other engine had the run; or, where the other had already run
    # it to the end before this one looked or claimed (these steps take no time), because
    # it is done.
    late = [r for r in refusals if RUNNING_HERE not in r and RUNNING_ELSEWHERE not in r]
    done = ("became succeeded while this process was resuming it", " is succeeded; ")
    assert all(any(d in r for d in done) for r in late), late
    assert len(late) <= IN_PROCESS_ROUNDS // 2, f"{len(late)} rounds did not overlap"


# -- across processes --------------------------------------------------------------------------
# The first step lasts a moment, so that a resumer that comes a little late (a loaded
# machine) still finds the run running, rather than finished.
MARK_SCRIPT = 'echo run >> "$MARKS/$STEP"; sleep "$PAUSE"; echo "$STEP"'

# Runs `tutti --db DB resume RUN` (the CLI's main) for each run id read from stdin, and
# answers with one JSON line: the exit code and what the command printed on stderr.
RESUMER = """
import contextlib, io, json, sys
from tutti_mcp.server.cli import main

db = sys.argv[1]
print("ready", flush=True)
for line in sys.stdin:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--db", db, "resume", line.strip()])
    print(json.dumps({"code": code, "stderr": err.getvalue()}), flush=True)
"""


def marked_spec(marks: Path) -> dict[str, Any]:
    steps = []
    for sid, deps in (("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])):
        env = {"MARKS": str(marks), "STEP": sid, "PAUSE": "0.2" if sid == "a" else "0"}
        steps.append({"id": sid, "argv": ["sh", "-c", MARK_SCRIPT], "env": env, "depends_on": deps})
    return {"name": "raced-cli", "steps": steps}


@asynccontextmanager
async def resumers(db: Path, n: int) -> AsyncIterator[list[LineProcess]]:
    async with AsyncExitStack() as stack:
        out = []
        for _ in range(n):
            process = await anyio.open_process(
                [sys.executable, "-c", RESUMER, str(db)], cwd=ROOT, env=cli_env()
            )
            stack.push_async_callback(process.aclose)
            stack.callback(kill_if_running, process)
            out.append(LineProcess(process))
        with anyio.fail_after(ROUND_S):
            assert [await r.line() for r in out] == ["ready"] * n
        yield out


async def create_interrupted(
    store: SqliteRunStore, spec: dict[str, Any], workspace: Path, n: int
) -> str:
    run_id = f"run_race_{n:03d}"
    run = RunRecord(
        id=run_id,
        name=spec["name"],
        status=RunStatus.PENDING,
        spec=spec,
        inputs={},
        created_at=time.time(),
        workspace=str(workspace),
    )
    await store.create_run(run, [s["id"] for s in spec["steps"]])
    await store.set_run(run_id, **interrupted_as(n))
    return run_id


@pytest.mark.skipif(sys.platform == "win32", reason="sh")
async def test_two_tutti_resume_processes_started_together_run_the_run_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    refusals: list[str] = []
    async with await SqliteRunStore.open(db) as store, resumers(db, 2) as procs:
        for n in range(PROCESS_ROUNDS):
            marks = tmp_path / f"marks-{n}"
            marks.mkdir()
            run_id = await create_interrupted(store, marked_spec(marks), tmp_path, n)
            for p in procs:  # both at once: nothing but the pipe writes between them
                await p.send(run_id)
            with anyio.fail_after(ROUND_S):
                answers = [json.loads(await p.line()) for p in procs]
            codes = sorted(a["code"] for a in answers)
            ran = {f.name: len(f.read_text().splitlines()) for f in marks.iterdir()}
            assert ran == {"a": 1, "b": 1, "c": 1, "d": 1}, (n, ran, answers)
            assert codes == [0, 2], (n, answers)  # one ran it; the other was refused
            refused = " ".join(next(a for a in answers if a["code"] == 2)["stderr"].split())
            refusals.append(refused)
            assert (await store.load_run(run_id)).status is RunStatus.SUCCEEDED
    # Refused because the other process had the run; only a resumer that came after the
    # run had finished (a very late start) hears that it succeeded.
    late = [r for r in refusals if RUNNING_ELSEWHERE not in r]
    assert all(f"{RUNNING_ELSEWHERE} " not in r and " is succeeded;" in r for r in late), late
    assert len(late) <= PROCESS_ROUNDS // 2, late


# -- what a resume answers ---------------------------------------------------------------------
async def test_a_resumed_run_reads_running_while_its_first_writes_wait_for_another_writer(
    tmp_path: Path,
) -> None:
    """workflow_resume answers once the run is launched; a status read right after must say
    `running`, even when the run's own first writes are slow (here: another process holds
    the write lock). The run is claimed, in the store, before the answer."""
    db = tmp_path / "runs.db"
    async with await SqliteRunStore.open(db) as store, anyio.create_task_group() as tg:
        config = EngineConfig(workspace=tmp_path)
        engine = Engine(store, {ExecutorKind.BUILTIN: BuiltinExecutor()}, config)
        run_id = await Engine(store, engine.executors, config).create_run(SPEC)
        await store.set_run(run_id, status=RunStatus.INTERRUPTED)
        supervisor = RunSupervisor(engine, tg)

        await supervisor.resume(run_id)
        with closing(sqlite3.connect(db, isolation_level=None)) as writer:
            writer.execute("BEGIN IMMEDIATE")  # the run's writes wait from here on
            with anyio.fail_after(ROUND_S):
                while run_id not in engine.live:  # launched: its execution is under way
                    await anyio.lowlevel.checkpoint()
            seen = (await supervisor.snapshot(run_id)).status
            stored = writer.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            writer.execute("ROLLBACK")
        assert (seen, stored[0]) == (RunStatus.RUNNING, "running")
        run = await supervisor.wait(run_id, lambda r: r.status.finished, ROUND_S)
        assert run.status is RunStatus.SUCCEEDED, run.error
