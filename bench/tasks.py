"""What an MCP task costs, on both protocol generations (in-process client, SQLite in memory):

- `tasks/get` latency: median and p95 over N calls, on a task waiting on a client step and on
  the finished task of a 200-step run (2026-07-28 inlines the result in `tasks/get`), against
  `workflow_status` on the same run;
- a 200-step builtin chain run as a task, from the tools/call to the client holding the
  result, against the same chain through `workflow_start(wait_s)`: 2025-11-25 blocks in
  `tasks/result`; 2026-07-28 polls `tasks/get` at the interval the server suggests
  (TUTTI_TASK_POLL_MS, set here with --poll-ms).

Run: `uv run python bench/tasks.py [--repeats N] [--calls N] [--poll-ms MS]`. Prints JSON.
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

from bench.mcp_overhead import chain
from tests.server.tasks_support import TasksClaim, raw, start_task_v2
from tests.server.tasks_support import request as v2_request
from tutti_mcp.server.app import create_server
from tutti_mcp.server.settings import Settings

MEM = Path(":memory:")
ONE_CLIENT_STEP = {"name": "one", "steps": [{"id": "ask", "prompt": "Say hi.", "run": "client"}]}
RUN_ID = "tutti/runId"


async def request(c: Client, mode: str, method: str, **params: Any) -> dict[str, Any]:
    """A tasks/* request as the tests send it (tests/server/tasks_support.py): raw on
    2025-11-25, where the client validates tools/call answers as CallToolResults."""
    if mode == "legacy":
        return await raw(c, method, params)
    return await v2_request(c, method, **params)


async def start_task(c: Client, mode: str, spec: dict[str, Any]) -> tuple[str, str]:
    """A task for workflow_start(spec): (task id, run id)."""
    if mode == "legacy":
        args = {"name": "workflow_start", "arguments": {"spec": spec}, "task": {}}
        created = await request(c, mode, "tools/call", **args)
        return created["task"]["taskId"], created["_meta"][RUN_ID]
    handle = await start_task_v2(c, "workflow_start", {"spec": spec})
    assert handle.meta is not None, handle
    return handle.task_id, handle.meta[RUN_ID]


def connect(mode: str, poll_ms: int = 500, *, tasks: bool = True) -> Client:
    server = create_server(Settings(db_path=MEM, task_poll_ms=poll_ms))
    extensions = [TasksClaim()] if mode == "auto" and tasks else None
    return Client(server, mode=mode, extensions=extensions)  # type: ignore[arg-type]


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered) * 1e3, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1e3, 3),
    }


async def timed(calls: int, fn: Any) -> list[float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return times


# -- the measures ----------------------------------------------------------------------------
async def get_latency(mode: str, calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with connect(mode) as c:
        tid, rid = await start_task(c, mode, ONE_CLIENT_STEP)
        waiting = await timed(calls, lambda: request(c, mode, "tasks/get", taskId=tid))
        status = await timed(calls, lambda: c.call_tool("workflow_status", {"run_id": rid}))
        out["waiting"] = summary(waiting)
        out["workflow_status_same_run"] = summary(status)
        tid, rid = await start_task(c, mode, chain(200, "builtin"))
        await c.call_tool("workflow_status", {"run_id": rid, "wait_s": 30})  # until it is done
        done = await timed(calls, lambda: request(c, mode, "tasks/get", taskId=tid))
        got = await request(c, mode, "tasks/get", taskId=tid)
        assert got["status"] == "completed", got
        out["done_200_steps"] = summary(done)
    return out


async def chain_as_task(mode: str, poll_ms: int) -> float:
    async with connect(mode, poll_ms) as c:
        t0 = time.perf_counter()
        tid, _ = await start_task(c, mode, chain(200, "builtin"))
        if mode == "legacy":
            result = await request(c, mode, "tasks/result", taskId=tid)
        else:
            while True:
                got = await request(c, mode, "tasks/get", taskId=tid)
                if got["status"] == "completed":
                    result = got["result"]
                    break
                await anyio.sleep(got["pollIntervalMs"] / 1000)  # as the server suggests
        elapsed = time.perf_counter() - t0
        assert result["structuredContent"]["status"] == "succeeded", result
        return elapsed


async def chain_with_wait(mode: str) -> float:
    async with connect(mode, tasks=False) as c:  # a client that asks for no task
        t0 = time.perf_counter()
        r = await c.call_tool("workflow_start", {"spec": chain(200, "builtin"), "wait_s": 30})
        elapsed = time.perf_counter() - t0
        assert (r.structured_content or {}).get("status") == "succeeded", r
        return elapsed


async def main(repeats: int, calls: int, poll_ms: int) -> dict[str, Any]:
    out: dict[str, Any] = {"repeats": repeats, "calls": calls, "poll_ms": poll_ms}
    for mode, name in (("legacy", "2025-11-25"), ("auto", "2026-07-28")):
        row: dict[str, Any] = {"tasks_get": await get_latency(mode, calls)}
        task = [await chain_as_task(mode, poll_ms) for _ in range(repeats)]
        wait = [await chain_with_wait(mode) for _ in range(repeats)]
        row["chain200_as_task_ms"] = round(statistics.median(task) * 1e3, 1)
        row["chain200_wait_s_ms"] = round(statistics.median(wait) * 1e3, 1)
        row["chain200_task_over_wait_ms"] = round(
            (statistics.median(task) - statistics.median(wait)) * 1e3, 1
        )
        out[name] = row
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--poll-ms", type=int, default=50)
    args = ap.parse_args()
    print(json.dumps(anyio.run(main, args.repeats, args.calls, args.poll_ms), indent=1))
