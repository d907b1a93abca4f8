"""Durability on Temporal with real processes and real kills: `tutti worker` processes
killed with SIGKILL in the middle of a step, and the Temporal server itself killed and
restarted on its database file. Every shell step writes to a journal when it starts and
when it ends, with its idempotency key and the pid of the worker running it, so the test
sees what ran, where, and what finished."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from temporalio.client import Client

from tests.temporal.devserver import DevServer
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.temporal.client import TemporalRuns
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus

pytestmark = pytest.mark.anyio

HEARTBEAT_S = 2  # a killed worker's step moves to another worker after this long
DEADLINE_S = 45.0  # a whole kill test, on a loaded 2-core machine
POLL_S = 0.05  # how often a journal or a run is read while waiting (no event to wait on)

# A step as a journal sees it: "start|end <step> <idempotency key> <worker pid> <own pid>".
# $PPID is the worker: the shell executor starts `sh` itself.
_STEP = (
    'echo "start $TUTTI_STEP_ID $TUTTI_IDEMPOTENCY_KEY $PPID $$" >> "$JOURNAL"; {body}; '
    'echo "end $TUTTI_STEP_ID $TUTTI_IDEMPOTENCY_KEY $PPID $$" >> "$JOURNAL"'
)
# The long step is long the first time only: once it has run again after a kill, the test
# need not wait for it.
_LONG = "if [ -e long.once ]; then sleep 0.2; else : > long.once; sleep 120; fi"


def step(sid: str, body: str = "true", **more: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "argv": ["sh", "-c", _STEP.format(body=body)],
        "env": {"JOURNAL": "${inputs.journal}"},
        **more,
    }


def durable_spec(long_body: str = _LONG) -> dict[str, Any]:
    return {
        "name": "durable",
        "inputs": {"journal": {"required": True}},
        "steps": [
            step("a"),
            step("b"),
            step("c", depends_on=["a", "b"]),
            step("long", long_body, depends_on=["c"], timeout=300),
            step("d", depends_on=["long"]),
        ],
    }


@dataclass(frozen=True)
class Line:
    event: str
    step: str
    key: str
    worker: int
    pid: int


def journal(path: Path) -> list[Line]:
    if not path.exists():
        return []
    out = []
    for text in path.read_text().splitlines():
        event, sid, key, worker, pid = text.split()
        out.append(Line(event, sid, key, int(worker), int(pid)))
    return out


async def until_journal(path: Path, what: str, ok: Any) -> list[Line]:
    """Poll the journal until `ok(lines)`; the caller bounds the wait (fail_after)."""
    while True:
        lines = journal(path)
        if ok(lines):
            return lines
        await anyio.sleep(POLL_S)


class Workers:
    """`tutti worker` processes (python -m tutti_mcp worker) on one task queue."""

    def __init__(self, address: str, queue: str, tmp: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = tmp
        self.env = {
            **os.environ,
            "TUTTI_BACKEND": "temporal",
            "TUTTI_TEMPORAL_ADDRESS": address,
            "TUTTI_TEMPORAL_TASK_QUEUE": queue,
            "TUTTI_TEMPORAL_HEARTBEAT_S": str(HEARTBEAT_S),
            "TUTTI_ALLOW_SHELL": "sh",
            "TUTTI_WORKSPACE": str(tmp),
        }
        self.env.pop("ANTHROPIC_API_KEY", None)

    def start(self, n: int) -> None:
        for i in range(n):
            env = {**self.env, "TUTTI_DB": str(self.tmp / f"worker{i}.db")}
            with (self.tmp / f"worker{i}.log").open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tutti_mcp", "worker"],
                    env=env,
                    cwd=self.tmp,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.procs.append(proc)

    def by_pid(self, pid: int) -> subprocess.Popen[bytes]:
        for proc in self.procs:
            if proc.pid == pid:
                return proc
        raise AssertionError(f"pid {pid} is none of the workers {[p.pid for p in self.procs]}")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-1500:] for p in sorted(self.tmp.glob("worker*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture
def workers(devserver: DevServer, task_queue: str, tmp_path: Path) -> Iterator[Workers]:
    ws = Workers(devserver.address, task_queue, tmp_path)
    try:
        yield ws
    finally:
        ws.stop()


async def start_run(runs: TemporalRuns, tmp: Path, spec: dict[str, Any]) -> str:
    submitter = Engine(InMemoryRunStore(), {}, EngineConfig(workspace=tmp))
    return await runs.start(submitter, spec, {"journal": str(tmp / "journal")}, str(tmp))


async def finished(runs: TemporalRuns, run_id: str) -> RunRecord:
    """The run's record once it has ended (a long poll on its result: no query to a worker
    that may be busy replaying it)."""
    await runs.handle(run_id).result()
    return (await runs.view(run_id)).record


def kill_step_processes(line: Line) -> None:
    """The killed worker's step child (its own process group) would live on, as it would
    not when a machine dies: end it too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(line.pid, signal.SIGKILL)


def starts_and_ends(lines: list[Line]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for line in lines:
        s, e = out.get(line.step, (0, 0))
        out[line.step] = (s + (line.event == "start"), e + (line.event == "end"))
    return out


async def test_a_worker_killed_mid_step_hands_the_run_to_another_worker(
    workers: Workers, devserver: DevServer, task_queue: str, tmp_path: Path
) -> None:
    """Two workers; the one running the long step is killed with SIGKILL. The other takes
    the run over: the steps committed before the kill do not run again, the killed step
    runs again on the surviving worker with the same idempotency key (at-least-once: a
    step whose worker dies mid-way may have done part of its work), and the run succeeds."""
    workers.start(2)
    runs = TemporalRuns(await Client.connect(devserver.address), task_queue)
    path = tmp_path / "journal"
    began = time.monotonic()
    with anyio.fail_after(DEADLINE_S):
        run_id = await start_run(runs, tmp_path, durable_spec())
        lines = await until_journal(
            path, "long started", lambda ls: any(x.step == "long" for x in ls)
        )
        first = next(x for x in lines if x.step == "long")
        killed = workers.by_pid(first.worker)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        kill_step_processes(first)
        record = await finished(runs, run_id)
    assert record.status is RunStatus.SUCCEEDED, workers.logs()
    lines = journal(path)
    assert starts_and_ends(lines) == {
        "a": (1, 1),
        "b": (1, 1),
        "c": (1, 1),
        "long": (2, 1),  # killed once, then run again to its end
        "d": (1, 1),
    }
    again = [x for x in lines if x.step == "long"][1:]
    survivor = next(p.pid for p in workers.procs if p is not killed)
    assert {x.worker for x in again} == {survivor}
    assert {x.key for x in lines if x.step == "long"} == {f"{run_id}:long"}
    assert record.steps["long"].attempts == 1  # one tutti attempt; Temporal retried it
    assert time.monotonic() - began < DEADLINE_S


@pytest.fixture
def own_devserver(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server this test may kill: its state in a database file of its own."""
    server = DevServer(tmp_path / "temporal-own.db").start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_run_goes_on_after_the_temporal_server_is_killed_and_restarted(
    own_devserver: DevServer, task_queue: str, tmp_path: Path
) -> None:
    """The Temporal server killed with SIGKILL while a step runs, and started again on the
    same database file and port: the workers reconnect by themselves, the run goes on and
    succeeds, and no step committed before the kill runs again. The step that was running
    may run again (at-least-once) if its worker could not report it while the server was
    down."""
    ws = Workers(own_devserver.address, task_queue, tmp_path)
    try:
        ws.start(2)
        runs = TemporalRuns(await Client.connect(own_devserver.address), task_queue)
        path = tmp_path / "journal"
        with anyio.fail_after(DEADLINE_S):
            run_id = await start_run(runs, tmp_path, durable_spec("sleep 1"))
            await until_journal(path, "long started", lambda ls: any(x.step == "long" for x in ls))
            own_devserver.kill()
            before = starts_and_ends(journal(path))
            await anyio.to_thread.run_sync(own_devserver.start)
            record = await finished(runs, run_id)
    finally:
        ws.stop()
    assert record.status is RunStatus.SUCCEEDED, ws.logs()
    counts = starts_and_ends(journal(path))
    for sid in ("a", "b", "c"):  # committed before the kill
        assert before[sid] == counts[sid] == (1, 1)
    long_starts, long_ends = counts["long"]
    assert 1 <= long_starts <= 2 and long_ends >= 1
    assert counts["d"] == (1, 1)
