"""Pipeline mode's figures, measured in one process (issue 15):

- items/s through 3 trivial builtin stages, in memory and with durable SQLite commits,
  against a plain anyio memory-object-stream pipeline of 3 trivial stages (buffers of
  100, one item per send) measured in the same run;
- RSS growth over 1,000,000 items (SQLite, JSONL sink, rows pruned as the stream goes);
- the most items in flight, against the bound, with a stage 10x slower than the others.

    uv run python bench/pipeline.py                 # all of it (about a minute)
    uv run python bench/pipeline.py --n 100000 --rss-n 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

TRIVIAL = [
    {"id": "a", "args": "${item}"},
    {"id": "b", "op": "pass"},
    {"id": "c", "op": "json", "value": "${b.output}"},
]


def spec(stages: list[dict[str, Any]], buffer: int = 100) -> dict[str, Any]:
    return {
        "name": "bench-pipeline",
        "type": "pipeline",
        "source": {"lines": "items.txt"},
        "stages": stages,
        "buffer": buffer,
        "sink": {"jsonl": "out.jsonl"},
    }


def workspace(n: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="tutti-pipeline-"))
    with open(root / "items.txt", "w") as f:
        for i in range(n):
            f.write(f"{i}\n")
    return root


async def plain(n: int) -> float:
    """items/s of a plain anyio pipeline: source -> 3 trivial stages -> sink, one item per
    send, buffers of 100."""
    pairs = [anyio.create_memory_object_stream[Any](100) for _ in range(4)]
    got = 0

    async def source() -> None:
        async with pairs[0][0]:
            for i in range(n):
                await pairs[0][0].send(str(i))

    async def stage(i: int) -> None:
        async with pairs[i][1], pairs[i + 1][0]:
            async for x in pairs[i][1]:
                await pairs[i + 1][0].send(x)

    async def sink() -> None:
        nonlocal got
        async with pairs[3][1]:
            async for _ in pairs[3][1]:
                got += 1

    t = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(source)
        for i in range(3):
            tg.start_soon(stage, i)
        tg.start_soon(sink)
    assert got == n
    return n / (time.perf_counter() - t)


async def tutti(
    n: int, store: Any, stages: list[dict[str, Any]], buffer: int = 100
) -> tuple[float, dict[str, Any], Any]:
    root = workspace(n)
    engine = Engine(store, {ExecutorKind.BUILTIN: BuiltinExecutor()}, EngineConfig(workspace=root))
    t = time.perf_counter()
    run = await engine.run(spec(stages, buffer))
    dt = time.perf_counter() - t
    assert run.status.value == "succeeded", run.error
    assert run.steps["pipeline"].output["items"] == n
    snap = await store.load_pipeline(run.id, "pipeline", rows=False)
    return n / dt, snap.mark.stats, root


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    await plain(10_000)  # warm-up
    await tutti(10_000, InMemoryRunStore(), TRIVIAL)
    plain_s = await plain(args.n)
    mem_s, _, _ = await tutti(args.n, InMemoryRunStore(), TRIVIAL)
    plain_s2 = await plain(args.n)
    base = (plain_s + plain_s2) / 2
    out["plain_items_per_s"] = round(base)
    out["memory_items_per_s"] = round(mem_s)
    out["memory_vs_plain"] = round(mem_s / base, 2)
    with tempfile.TemporaryDirectory() as d:
        async with await SqliteRunStore.open(Path(d) / "bench.db") as store:
            sql_s, _, _ = await tutti(args.n, store, TRIVIAL)
    out["sqlite_items_per_s"] = round(sql_s)

    with tempfile.TemporaryDirectory() as d:
        async with await SqliteRunStore.open(Path(d) / "rss.db") as store:
            await tutti(50_000, store, TRIVIAL)  # warm-up: caches, pools, the first pages
            before = rss_mb()
            rate, _, _ = await tutti(args.rss_n, store, TRIVIAL)
            after = rss_mb()
            size = (await store.size_stats()).get("pipeline_items")
    out["rss_items"] = args.rss_n
    out["rss_before_mb"] = round(before, 1)
    out["rss_growth_mb"] = round(after - before, 1)
    out["rss_run_items_per_s"] = round(rate)
    out["pipeline_items_table_bytes_after"] = size

    # a stage 10x slower than the others: a wait of ~10x what a trivial stage takes, one
    # item at a time (its executor), between two trivial stages
    slow = [
        {"id": "a", "args": "${item}"},
        {"id": "slow", "op": "wait", "value": 0.0003, "args": "${a.output}"},
        {"id": "c", "op": "pass"},
    ]
    rate, stats, _ = await tutti(args.slow_n, InMemoryRunStore(), slow, buffer=20)
    out["slow_stage"] = {
        "items": args.slow_n,
        "items_per_s": round(rate),
        "max_in_flight": stats["max_in_flight"],
        "in_flight_bound": stats["in_flight_bound"],
        "latency_ms": {s["id"]: s["latency"] for s in stats["stages"]},
    }
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300_000)
    p.add_argument("--rss-n", type=int, default=1_000_000)
    p.add_argument("--slow-n", type=int, default=5_000)
    print(json.dumps(anyio.run(main, p.parse_args()), indent=2))
