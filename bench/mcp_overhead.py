"""What the MCP layer costs, against the engine driven directly in the same process.

- tool round trip: `workflow_list` through an in-process MCP client (both protocol
  generations), against calling the plain function behind it;
- a run started through MCP: `workflow_start(wait_s)` of a 200-step builtin chain, against
  `Engine.run` of the same spec on the same kind of store;
- client tasks: a 50-step chain of client steps driven by `step_complete`, per step, against
  completing the same steps through `Engine.complete_step` directly.

Each figure is a median of N runs, in wall time and in CPU time of the event loop's thread
(`*_cpu_*`: what a loaded machine disturbs far less). Run:
`uv run python bench/mcp_overhead.py [--repeats N]`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.records import EventKind
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.app import create_server
from tutti_mcp.server.settings import Settings, build_engine

MEM = Path(":memory:")


def chain(n: int, kind: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(n):
        step: dict[str, Any] = {"id": f"s{i}"}
        if kind == "builtin":
            step |= {"op": "template", "args": f"{i}"}
        else:
            step |= {"prompt": f"step {i}", "run": "client"}
        if i:
            step["depends_on"] = [f"s{i - 1}"]
        steps.append(step)
    return {"name": f"{kind}-chain-{n}", "steps": steps}


Timing = tuple[float, float]  # wall seconds, and CPU seconds of the event loop's thread


def since(t0: Timing) -> Timing:
    return time.perf_counter() - t0[0], time.thread_time() - t0[1]


def now() -> Timing:
    return time.perf_counter(), time.thread_time()


async def direct_engine(spec: dict[str, Any], *, client: bool) -> Timing:
    async with await SqliteRunStore.open(":memory:") as store:
        engine = build_engine(Settings(db_path=MEM), store, model_executor=ExecutorKind.CLIENT)
        t0 = now()
        prepared = await engine.create(spec)
        run_id = prepared.run_id
        if not client:
            await engine.execute(prepared)
            return since(t0)
        # Woken by the run's own events, as the MCP path's waits are (a loop of sleep(0)
        # would compete with the store's thread for the GIL and time the machine's load).
        handed: set[str] = set()
        wake = anyio.Event()

        def on_event(kind: EventKind, step_id: str | None, data: dict[str, Any]) -> None:
            nonlocal wake
            if kind is EventKind.STEP_WAITING and step_id is not None:
                handed.add(step_id)
                wake.set()
                wake = anyio.Event()

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.execute(prepared, attached=True, on_event=on_event))
            for step in spec["steps"]:
                while step["id"] not in handed:
                    await wake.wait()
                await engine.complete_step(run_id, step["id"], output="ok")
        return since(t0)


async def via_mcp(spec: dict[str, Any], mode: str, *, client: bool) -> Timing:
    server = create_server(Settings(db_path=MEM))
    async with Client(server, mode=mode) as c:  # type: ignore[arg-type]
        t0 = now()
        r = await c.call_tool("workflow_start", {"spec": spec, "wait_s": 30})
        sc = r.structured_content or {}
        while client and sc.get("client_tasks"):
            task = sc["client_tasks"][0]
            r = await c.call_tool(
                "step_complete",
                {"run_id": sc["run_id"], "step_id": task["step_id"], "output": "ok"},
            )
            sc = r.structured_content or {}
        elapsed = since(t0)
        assert sc.get("status") == "succeeded", (mode, r.content[0].text[:500])
        return elapsed


async def round_trip(mode: str, calls: int) -> tuple[float, float]:
    """Median seconds per `workflow_list` call through MCP, and per direct call."""
    from tutti_mcp.tools import workflow as wfl

    server = create_server(Settings(db_path=MEM))
    async with Client(server, mode=mode) as c:  # type: ignore[arg-type]
        mcp_times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            await c.call_tool("workflow_list", {"limit": 5})
            mcp_times.append(time.perf_counter() - t0)
    async with await SqliteRunStore.open(":memory:") as store:
        engine = build_engine(Settings(db_path=MEM), store)
        async with anyio.create_task_group() as tg:
            from tutti_mcp.engine.supervisor import RunSupervisor
            from tutti_mcp.tools.sampling import SamplingBroker

            state = wfl.ToolState(RunSupervisor(engine, tg), SamplingBroker(), Path.cwd())
            direct = []
            for _ in range(calls):
                t0 = time.perf_counter()
                await wfl.list_runs(state, None, 5)
                direct.append(time.perf_counter() - t0)
            tg.cancel_scope.cancel()
    return statistics.median(mcp_times), statistics.median(direct)


def medians(timings: list[Timing]) -> Timing:
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


async def main(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"repeats": repeats}
    for mode in ("legacy", "auto"):
        m, d = await round_trip(mode, 300)
        out[f"round_trip_ms_{mode}"] = round(m * 1e3, 3)
        out["round_trip_ms_direct"] = round(d * 1e3, 3)
    # Wall time follows the machine's load; the event loop thread's CPU time much less
    # (the store's own thread does the same work on both paths and is left out).
    builtin = chain(200, "builtin")
    ref, ref_cpu = medians([await direct_engine(builtin, client=False) for _ in range(repeats)])
    out["chain200_direct_ms"] = round(ref * 1e3, 1)
    out["chain200_direct_cpu_ms"] = round(ref_cpu * 1e3, 1)
    for mode in ("legacy", "auto"):
        t, cpu = medians([await via_mcp(builtin, mode, client=False) for _ in range(repeats)])
        out[f"chain200_mcp_ms_{mode}"] = round(t * 1e3, 1)
        out[f"chain200_ratio_{mode}"] = round(t / ref, 2)
        out[f"chain200_mcp_cpu_ms_{mode}"] = round(cpu * 1e3, 1)
        out[f"chain200_cpu_ratio_{mode}"] = round(cpu / ref_cpu, 2)
    tasks = chain(50, "client")
    ref, ref_cpu = medians([await direct_engine(tasks, client=True) for _ in range(repeats)])
    out["client50_direct_ms_per_step"] = round(ref * 1e3 / 50, 3)
    out["client50_direct_cpu_ms_per_step"] = round(ref_cpu * 1e3 / 50, 3)
    for mode in ("legacy", "auto"):
        t, cpu = medians([await via_mcp(tasks, mode, client=True) for _ in range(repeats)])
        out[f"client50_mcp_ms_per_step_{mode}"] = round(t * 1e3 / 50, 3)
        out[f"client50_ratio_{mode}"] = round(t / ref, 2)
        out[f"client50_mcp_cpu_ms_per_step_{mode}"] = round(cpu * 1e3 / 50, 3)
        out[f"client50_cpu_ratio_{mode}"] = round(cpu / ref_cpu, 2)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(json.dumps(anyio.run(main, args.repeats), indent=1))
