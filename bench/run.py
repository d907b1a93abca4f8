"""tutti's scheduler benchmarks, next to an ideal plain-asyncio scheduler and LangGraph's figures.

    uv run python bench/run.py                 # everything, 5 repeats (~1-2 min on 2 cores)
    uv run python bench/run.py --quick         # 2 repeats
    uv run python bench/run.py --repeats 9
    uv run python bench/run.py --one chain_2000 --variant sqlite     # one fresh-process run (JSON)
    uv run python bench/run.py --profile chain_1000 --variant mem    # cProfile of engine.execute

Variants, all measured in one process (except the memory figures, one fresh process each):
  ref     ideal plain-asyncio scheduler: each step an asyncio task started the moment its last
          dependency finishes, awaiting asyncio.sleep(duration) (nothing for zero steps)
  mem     tutti Engine + BuiltinExecutor on InMemoryRunStore (no persistence)
  sqlite  tutti Engine + BuiltinExecutor on SqliteRunStore, a fresh temp file per run (WAL,
          synchronous=NORMAL; every step's checkpoint committed before its dependents start)

Timed region: `await engine.execute(prepared)` only. `create` (spec parse + compile + plan +
the run's rows) happens before the clock starts and is reported separately (BUILD).

Raw results: bench/results/<stamp>/raw.jsonl (one JSON object per measurement) and table.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import dagbench  # noqa: E402
from common import (  # noqa: E402
    CONCURRENT_RUNS,
    CONCURRENT_STEPS,
    LATENCY_CASES,
    MEMORY_CASES,
    OVERHEAD_CASES,
    SCALING_N,
    TEMPLATED_CASES,
    VARIANTS,
    Recorder,
)
from report import _machine, med, report  # noqa: E402

from tutti_mcp.engine.config import EngineConfig  # noqa: E402
from tutti_mcp.engine.executors.builtin import BuiltinExecutor  # noqa: E402
from tutti_mcp.engine.service import Engine  # noqa: E402
from tutti_mcp.engine.spec import ExecutorKind  # noqa: E402
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore  # noqa: E402
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore  # noqa: E402


# -- the reference scheduler ---------------------------------------------------------------
class RefGraph:
    """What the ideal scheduler needs, prepared outside the timed region."""

    def __init__(self, dag: dict[str, Any]) -> None:
        self.ids = [s["id"] for s in dag["steps"]]
        self.deps = {s["id"]: tuple(s["deps"]) for s in dag["steps"]}
        self.dur = {s["id"]: s["duration_ms"] / 1000.0 for s in dag["steps"]}
        self.dependents: dict[str, list[str]] = {sid: [] for sid in self.ids}
        for s in dag["steps"]:
            for d in s["deps"]:
                self.dependents[d].append(s["id"])
        self.roots = [sid for sid in self.ids if not self.deps[sid]]


async def ref_run(g: RefGraph, times: dict[str, tuple[float, float]] | None = None) -> None:
    loop = asyncio.get_running_loop()
    remaining = {sid: len(g.deps[sid]) for sid in g.ids}
    left = len(g.ids)
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    clock = time.time

    async def step(sid: str) -> None:
        nonlocal left
        t0 = clock() if times is not None else 0.0
        d = g.dur[sid]
        if d > 0:
            await asyncio.sleep(d)
        if times is not None:
            times[sid] = (t0, clock())
        for c in g.dependents[sid]:
            remaining[c] -= 1
            if remaining[c] == 0:
                t = loop.create_task(step(c))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        left -= 1
        if left == 0:
            done.set()

    for r in g.roots:
        t = loop.create_task(step(r))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await done.wait()


# -- tutti ---------------------------------------------------------------------------------
def make_engine(store: Any) -> Engine:
    return Engine(
        store,
        {ExecutorKind.BUILTIN: BuiltinExecutor()},
        # the engine-wide cap defaults to 64; the spec asks for 1024
        EngineConfig(max_concurrency=1024),
    )


async def open_store(variant: str, tmpdir: str) -> Any:
    if variant == "mem":
        return InMemoryRunStore()
    path = os.path.join(tmpdir, f"run-{time.monotonic_ns()}.db")
    return await SqliteRunStore.open(path)


async def close_store(store: Any) -> None:
    if isinstance(store, SqliteRunStore):
        await store.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(store.path + suffix)


async def checkpoint_bytes(store: SqliteRunStore, run_id: str) -> dict[str, Any]:
    """Bytes the run's checkpoints take: row payload (sum of column sizes; numbers count 8)
    and the table's pages (dbstat), per step."""
    rows = await store.db.fetchall(
        "SELECT count(*), sum(length(run_id) + length(step_id) + 8 + length(status) + "
        "length(output) + 8 + 8 + 8 + coalesce(length(usage), 0) + coalesce(length(executor), 0) "
        "+ coalesce(length(error), 0)), sum(length(output)) FROM checkpoints WHERE run_id = ?",
        (run_id,),
    )
    n, payload, output = rows[0]
    stats = await store.size_stats()
    return {
        "ckpt_rows": n,
        "ckpt_payload_bytes": payload,
        "ckpt_output_bytes": output,
        "ckpt_table_bytes": stats.get("checkpoints"),
        "db_file_bytes": stats.get("file_bytes"),
        "tables": stats,
    }


def step_lags(
    deps: dict[str, tuple[str, ...]], times: dict[str, tuple[float, float]]
) -> list[float]:
    """Step start minus the end of its last dependency, for steps with dependencies (s)."""
    out = []
    for sid, ds in deps.items():
        ends = [times[d][1] for d in ds if d in times]  # a skipped step has no times
        if ends and sid in times:
            out.append(times[sid][0] - max(ends))
    return out


async def tutti_run(
    dag: dict[str, Any], spec: dict[str, Any], variant: str, tmpdir: str, *, detail: bool = False
) -> dict[str, Any]:
    store = await open_store(variant, tmpdir)
    try:
        engine = make_engine(store)
        t0 = time.perf_counter()
        prepared = await engine.create(spec)  # passed to execute: nothing planned twice
        run_id = prepared.run_id
        t1 = time.perf_counter()
        gc.collect()
        t2 = time.perf_counter()
        rec = await engine.execute(prepared)
        t3 = time.perf_counter()
        if rec.status.value != "succeeded":
            raise RuntimeError(f"{dag['name']} on {variant}: run {rec.status.value}: {rec.error}")
        out: dict[str, Any] = {"wall_s": t3 - t2, "create_s": t1 - t0}
        if detail:
            deps = {s["id"]: tuple(s["deps"]) for s in dag["steps"]}
            times = {
                sid: (r.started_at, r.finished_at)
                for sid, r in rec.steps.items()
                if r.started_at is not None and r.finished_at is not None
            }
            lags = step_lags(deps, times)
            out["lag_p50_ms"] = 1000 * statistics.median(lags) if lags else None
            out["lag_max_ms"] = 1000 * max(lags) if lags else None
        if variant == "sqlite" and detail:
            out.update(await checkpoint_bytes(store, run_id))
        return out
    finally:
        await close_store(store)


async def ref_measure(dag: dict[str, Any], *, detail: bool = False) -> dict[str, Any]:
    g = RefGraph(dag)
    times: dict[str, tuple[float, float]] | None = {} if detail else None
    gc.collect()
    t0 = time.perf_counter()
    await ref_run(g, times)
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"wall_s": wall}
    if times is not None:
        lags = step_lags(g.deps, times)
        out["lag_p50_ms"] = 1000 * statistics.median(lags) if lags else None
        out["lag_max_ms"] = 1000 * max(lags) if lags else None
    return out


async def measure(
    dag: dict[str, Any], spec: dict[str, Any], variant: str, tmpdir: str, *, detail: bool = False
) -> dict[str, Any]:
    if variant == "ref":
        return await ref_measure(dag, detail=detail)
    return await tutti_run(dag, spec, variant, tmpdir, detail=detail)


def templated_chain(n_steps: int) -> dict[str, Any]:
    """A chain of builtin template steps, each adding to its predecessor's output."""
    steps: list[dict[str, Any]] = [{"id": "s0", "args": "${inputs.seed}"}]
    steps += [
        {"id": f"s{i}", "args": f"${{s{i - 1}.output}}.", "depends_on": [f"s{i - 1}"]}
        for i in range(1, n_steps)
    ]
    return {"name": f"templated_chain_{n_steps}", "inputs": {"seed": "x"}, "steps": steps}


async def concurrent_runs(
    variant: str, tmpdir: str, n_runs: int = CONCURRENT_RUNS, n_steps: int = CONCURRENT_STEPS
) -> dict[str, Any]:
    """N runs of a templated chain at once on one store and engine: each task creates its
    run and executes it; the clock covers all of it (create + execute)."""
    spec = templated_chain(n_steps)
    store = await open_store(variant, tmpdir)
    try:
        engine = make_engine(store)
        failed: list[str] = []

        async def one_run(k: int) -> None:
            rec = await engine.execute(await engine.create_run(spec, {"seed": f"r{k}"}))
            if rec.status.value != "succeeded":
                failed.append(f"{rec.id}: {rec.status.value}: {rec.error}")

        gc.collect()
        t0 = time.perf_counter()
        await asyncio.gather(*(one_run(k) for k in range(n_runs)))
        wall = time.perf_counter() - t0
        if failed:
            raise RuntimeError(f"concurrent runs on {variant}: {len(failed)} failed: {failed[0]}")
        out: dict[str, Any] = {"wall_s": wall, "n_runs": n_runs, "n_steps": n_steps}
        if isinstance(store, SqliteRunStore) and hasattr(store.db, "write_statistics"):
            out["writer"] = dataclasses.asdict(store.db.write_statistics())
        return out
    finally:
        await close_store(store)


def build_parts(spec: dict[str, Any]) -> dict[str, float]:
    """Seconds to parse + compile the spec, and to plan it (outside any run)."""
    engine = make_engine(InMemoryRunStore())
    t0 = time.perf_counter()
    wf = engine.compile(spec)
    engine.preflight(wf)
    t1 = time.perf_counter()
    engine.plan(wf)
    return {"compile_s": t1 - t0, "plan_s": time.perf_counter() - t1}


async def inside_execute(dag: dict[str, Any], spec: dict[str, Any], tmpdir: str) -> dict[str, Any]:
    """One extra untimed tutti-mem run with the engine's parse/compile/plan/metrics calls
    counted and timed: what of the build work `execute` does (inside the timed region)."""
    import tutti_mcp.engine.execution.runner as runner_mod
    import tutti_mcp.engine.service as service_mod

    homes = {
        "parse_spec": service_mod,
        "compile_workflow": service_mod,
        "make_plan": service_mod,
        "run_metrics": runner_mod,
    }
    real = {n: getattr(m, n) for n, m in homes.items() if hasattr(m, n)}
    calls = dict.fromkeys(real, 0)
    spent = dict.fromkeys(real, 0.0)

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                calls[name] += 1
                spent[name] += time.perf_counter() - t

        return inner

    store = await open_store("mem", tmpdir)
    engine = make_engine(store)
    prepared = await engine.create(spec)
    for n, fn in real.items():
        setattr(homes[n], n, wrap(n, fn))
    try:
        t0 = time.perf_counter()
        await engine.execute(prepared)
        wall = time.perf_counter() - t0
    finally:
        for n, fn in real.items():
            setattr(homes[n], n, fn)
    return {"wall_s": wall, "calls": calls, "spent_s": spent}


def _replay(conn: Any, items: list[Any]) -> None:
    """One recorded transaction again: statements, and functions run inside it (claims)."""
    conn.execute("BEGIN IMMEDIATE")
    for item in items:
        if isinstance(item, tuple):
            conn.execute(*item)
        elif item is not None:
            item.fn(conn, *item.args)
    conn.execute("COMMIT")


async def sqlite_floor(dag: dict[str, Any], spec: dict[str, Any], tmpdir: str) -> dict[str, Any]:
    """What tutti-sqlite's SQLite work costs without the engine around it.

    One extra tutti-sqlite run records every transaction the store's writer hands to SQLite
    (memory/group_commit.py: the statements and their parameters). Those transactions are
    then replayed on fresh databases, timing only the ones `execute` produced:
      sync      sqlite3 in this thread, one transaction after the other
      aiosqlite the same through the connection's worker thread (aiosqlite's), awaiting each
      writer    the same through the store's writer (Database.write), awaiting each
    plus the bare round trip to that thread (a no-op function run in it)."""
    from tutti_mcp.memory import group_commit
    from tutti_mcp.memory.connection import Database, open_sync

    real_apply = group_commit.apply_batch

    batches: list[list[Any]] = []

    def recording(conn: Any, batch: Any, path: str, *, begun: bool) -> None:
        batches.append(list(batch.ops))
        real_apply(conn, batch, path, begun=begun)

    group_commit.apply_batch = recording  # type: ignore[assignment]
    try:
        store = await open_store("sqlite", tmpdir)
        try:
            engine = make_engine(store)
            prepared = await engine.create(spec)
            first = len(batches)
            t0 = time.perf_counter()
            await engine.execute(prepared)
            wall = time.perf_counter() - t0
        finally:
            await close_store(store)
    finally:
        group_commit.apply_batch = real_apply
    before, during = batches[:first], batches[first:]
    out: dict[str, Any] = {
        "wall_s": wall,
        "txns": len(during),
        "statements": sum(1 for b in during for op in b if op is not None),
    }

    sync, via, writer, trip = [], [], [], []
    for k in range(3):  # fresh databases each time; the median goes in the table
        path = os.path.join(tmpdir, f"floor-sync-{k}.db")
        conn = open_sync(path)
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # as the store's connection
        for b in before:
            _replay(conn, b)
        t0 = time.perf_counter()
        for b in during:
            _replay(conn, b)
        sync.append(time.perf_counter() - t0)
        conn.close()

        path = os.path.join(tmpdir, f"floor-async-{k}.db")
        db = await Database.open(path)
        try:
            for b in before:
                await db.call(_replay, b)
            t0 = time.perf_counter()
            for b in during:
                await db.call(_replay, b)
            via.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(len(during)):
                await db.run(_noop)
            trip.append(time.perf_counter() - t0)
        finally:
            await db.close()

        path = os.path.join(tmpdir, f"floor-writer-{k}.db")
        db = await Database.open(path)
        try:
            for b in before:
                await db.call(_replay, b)
            t0 = time.perf_counter()
            for b in during:
                await db.write([op for op in b if isinstance(op, tuple)])
            writer.append(time.perf_counter() - t0)
        finally:
            await db.close()
    out.update(
        sync_s=med(sync),
        aiosqlite_s=med(via),
        writer_s=med(writer),
        roundtrip_s=med(trip),
        sync_all=sync,
        aiosqlite_all=via,
    )
    return out


def _noop() -> None:
    return None


# -- statistics ----------------------------------------------------------------------------


# -- LangGraph's figures -------------------------------------------------------------------


# -- fresh-process runs (memory) -----------------------------------------------------------
def _proc_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])  # kB
    return out


def one(case: str, variant: str) -> dict[str, Any]:
    """Run one case once in this (fresh) process; peak RSS growth over RSS after imports.

    Peak is VmHWM (reset to the current RSS after imports via /proc/self/clear_refs where
    allowed). getrusage's ru_maxrss is kept in the output but not used: on Linux a child
    started from a big parent reports the parent's peak in ru_maxrss (signal->maxrss
    survives fork+exec), which would make the figure depend on the benchmark driver."""
    dag, spec = dagbench.case(case)
    gc.collect()
    base = _proc_status()
    reset = False
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if variant == "ref":
            asyncio.run(ref_measure(dag))
        else:
            asyncio.run(tutti_run(dag, spec, variant, tmp))
        wall = time.perf_counter() - t0
    after = _proc_status()
    peak_kb = after["VmHWM"]
    return {
        "section": "memory",
        "case": case,
        "variant": variant,
        "rss_after_imports_mb": base["VmRSS"] / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "growth_mb": max(0.0, (peak_kb - base["VmRSS"]) / 1024),
        "hwm_reset": reset,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": wall,
    }


def run_one_subprocess(case: str, variant: str) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", case, "--variant", variant],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if r.returncode != 0:
        raise RuntimeError(f"--one {case} --variant {variant} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- the whole benchmark -------------------------------------------------------------------


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def bench_inprocess(rec: Recorder, repeats: int, tmpdir: str) -> None:
    dags, specs = {}, {}
    for name in {*OVERHEAD_CASES, *LATENCY_CASES, *(f"chain_{n}" for n in SCALING_N)}:
        dags[name], specs[name] = dagbench.case(name)
    for name in TEMPLATED_CASES:
        dags[name], specs[name] = dagbench.case(name)

    # warm up: first runs pay for lazy imports, jinja and pydantic caches, SQLite's page cache
    for v in VARIANTS:
        for _ in range(2):
            await measure(dags["chain_250"], specs["chain_250"], v, tmpdir)

    zero_cases = list(OVERHEAD_CASES) + [
        f"chain_{n}" for n in SCALING_N if f"chain_{n}" not in OVERHEAD_CASES
    ]
    zero_cases += TEMPLATED_CASES
    for case in zero_cases:
        progress(f"  {case}")
        dag, spec = dags[case], specs[case]
        for v in VARIANTS:  # a warm-up run per case
            await measure(dag, spec, v, tmpdir)
        for i in range(repeats):
            for v in VARIANTS:
                m = await measure(dag, spec, v, tmpdir, detail=(i == 0 and v == "sqlite"))
                rec.add(
                    {
                        "section": "zero",
                        "case": case,
                        "variant": v,
                        "repeat": i,
                        "n_steps": dag["n_steps"],
                        **m,
                    }
                )

    for case in LATENCY_CASES:
        progress(f"  {case}")
        dag, spec = dags[case], specs[case]
        for i in range(repeats):
            for v in VARIANTS:
                m = await measure(dag, spec, v, tmpdir, detail=True)
                rec.add(
                    {
                        "section": "latency",
                        "case": case,
                        "variant": v,
                        "repeat": i,
                        "n_steps": dag["n_steps"],
                        "critical_path_ms": dag["critical_path_ms"],
                        "superstep_bound_ms": dag["superstep_bound_ms"],
                        **m,
                    }
                )

    progress(f"  {CONCURRENT_RUNS} concurrent runs")
    await concurrent_runs("sqlite", tmpdir, 50)  # warm-up
    for i in range(repeats):
        for v in ("mem", "sqlite"):
            rec.add(
                {
                    "section": "concurrent",
                    "variant": v,
                    "repeat": i,
                    **await concurrent_runs(v, tmpdir),
                }
            )

    progress("  build costs, transactions")
    for case in sorted(dags):
        parts = [build_parts(specs[case]) for _ in range(max(3, repeats))]
        inside = await inside_execute(dags[case], specs[case], tmpdir)
        rec.add(
            {
                "section": "build",
                "case": case,
                "n_steps": dags[case]["n_steps"],
                "compile_s": med([x["compile_s"] for x in parts]),
                "plan_s": med([x["plan_s"] for x in parts]),
                "in_execute": inside,
            }
        )
    try:
        t = await sqlite_floor(dags["chain_1000"], specs["chain_1000"], tmpdir)
    except Exception as exc:  # relies on memory/group_commit.py internals (apply_batch)
        t = {"error": f"{type(exc).__name__}: {exc}"}
    rec.add({"section": "txns", "case": "chain_1000", "variant": "sqlite", **t})


def bench_memory(rec: Recorder, repeats: int) -> None:
    for case in MEMORY_CASES:
        progress(f"  memory {case}")
        n = repeats if case == "chain_2000" else 1
        for i in range(n):
            for v in VARIANTS:
                rec.add({**run_one_subprocess(case, v), "repeat": i})


# -- the table -----------------------------------------------------------------------------


# -- profiling -----------------------------------------------------------------------------
def profile(case: str, variant: str, top: int) -> None:
    import cProfile
    import pstats

    dag, spec = dagbench.case(case)

    async def go() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(2):
                await tutti_run(dag, spec, variant, tmp)
            store = await open_store(variant, tmp)
            engine = make_engine(store)
            prepared = await engine.create(spec)
            prof = cProfile.Profile()
            prof.enable()
            await engine.execute(prepared)
            prof.disable()
            await close_store(store)
        for key in ("tottime", "cumulative"):
            print(f"\n==== {case} {variant}: top {top} by {key} ====")
            pstats.Stats(prof).sort_stats(key).print_stats(top)

    asyncio.run(go())


def _cpu_snapshot() -> tuple[float, float]:
    """(CPU seconds busy on the whole machine, CPU seconds of this process and its children)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    machine = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is in user
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return machine, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# -- main ----------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description="tutti scheduler benchmarks (see bench/README.md)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 repeats")
    ap.add_argument("--one", metavar="CASE", help="run CASE once in this process, print JSON")
    ap.add_argument("--variant", choices=VARIANTS, default="mem")
    ap.add_argument("--profile", metavar="CASE", help="cProfile engine.execute on CASE")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--no-memory", action="store_true", help="skip the fresh-process RSS runs")
    ap.add_argument(
        "--tmpdir",
        help="where the sqlite files go (default: the system temp dir; /dev/shm = no disk)",
    )
    a = ap.parse_args()

    if a.one:
        print(json.dumps(one(a.one, a.variant)))
        return 0
    if a.profile:
        profile(a.profile, a.variant, a.top)
        return 0

    repeats = 2 if a.quick else a.repeats
    cpu0, t_start = _cpu_snapshot(), time.perf_counter()
    out_dir = BENCH / "results" / time.strftime("%Y%m%d-%H%M%S")
    rec = Recorder(out_dir / "raw.jsonl")
    t0 = time.perf_counter()
    rec.add(
        {
            "section": "meta",
            "repeats": repeats,
            "machine": _machine(),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": os.getloadavg()[0],
            "tmpdir": a.tmpdir or tempfile.gettempdir(),
        }
    )

    if not a.no_memory:
        progress("memory (fresh processes)")
        bench_memory(rec, repeats)
    else:
        for case in MEMORY_CASES:
            for v in VARIANTS:
                rec.add(
                    {
                        "section": "memory",
                        "case": case,
                        "variant": v,
                        "peak_rss_mb": float("nan"),
                        "growth_mb": float("nan"),
                        "rss_after_imports_mb": float("nan"),
                    }
                )
    progress("in-process runs")
    with tempfile.TemporaryDirectory(prefix="tutti-bench-", dir=a.tmpdir) as tmp:
        asyncio.run(bench_inprocess(rec, repeats, tmp))
    cpu1, t1 = _cpu_snapshot(), time.perf_counter()
    rec.add(
        {
            "section": "summary_load",
            "elapsed_s": t1 - t_start,
            "other_cpu_s": max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1])),
            "loadavg_end": os.getloadavg()[0],
        }
    )
    text, results = report(rec, repeats, out_dir)
    rec.add({"section": "summary", "targets": results, "elapsed_s": time.perf_counter() - t0})
    (out_dir / "table.txt").write_text(text + "\n", encoding="utf-8")
    print(text)
    progress(f"\n{time.perf_counter() - t0:.0f}s; raw results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
