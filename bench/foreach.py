"""What a `foreach` instance costs, against a static step doing the same work in a DAG of
the same shape, in the same process (issue 13: at most 2x the static per-step figure on
SQLite, and flat as N grows).

Both workflows read a list of N items from a first step, render one templated step per
item, and end in one step after all of them:
- static: N steps `s{i}` with `args: "${src.output[i]}"`, and `end` depending on them all;
- foreach: one step with `foreach: "${src.output}"` and `args: "${item}"`, and `end` after it
  (the instances are created, committed and collected inside the timed region).
Only `execute` is timed (a run created beforehand), on the in-memory store and on SQLite
(a file in a temporary directory, WAL, every step committed). The rounds alternate the two
workflows; the figures are medians.

    uv run python bench/foreach.py                     # N = 1,000 and 10,000, 5 rounds
    uv run python bench/foreach.py --n 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore


def static_spec(n: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": "src", "value": [f"item {i}" for i in range(n)]}]
    steps += [{"id": f"s{i}", "args": f"${{src.output[{i}]}}"} for i in range(n)]
    steps.append({"id": "end", "args": "done", "depends_on": [f"s{i}" for i in range(n)]})
    return {"name": f"static{n}", "max_concurrency": 1024, "steps": steps}


def foreach_spec(n: int) -> dict[str, Any]:
    return {
        "name": f"foreach{n}",
        "max_concurrency": 1024,
        "steps": [
            {"id": "src", "value": [f"item {i}" for i in range(n)]},
            {"id": "each", "foreach": "${src.output}", "args": "${item}"},
            {"id": "end", "args": "done", "depends_on": ["each"]},
        ],
    }


async def timed(engine: Engine, spec: dict[str, Any], n: int) -> float:
    prepared = await engine.create(spec)
    t = time.perf_counter()
    run = await engine.execute(prepared)
    wall = time.perf_counter() - t
    assert run.status.value == "succeeded", run.error
    assert len(run.steps) >= n
    return wall / n


async def measure(n: int, rounds: int, where: str, tmp: Path) -> dict[str, float]:
    config = EngineConfig(max_concurrency=1024, max_foreach_items=max(n, 10_000))
    executors = {ExecutorKind.BUILTIN: BuiltinExecutor()}
    figures: dict[str, list[float]] = {"static": [], "foreach": []}
    store: Any
    if where == "memory":
        store = InMemoryRunStore()
    else:
        store = await SqliteRunStore.open(tmp / f"bench-{n}.db")
    try:
        engine = Engine(store, executors, config)
        specs = {"static": static_spec(n), "foreach": foreach_spec(n)}
        for spec in specs.values():  # warm-up: compile caches, first renders
            await timed(engine, spec, n)
        for _ in range(rounds):
            for kind, spec in specs.items():
                figures[kind].append(await timed(engine, spec, n))
    finally:
        if where != "memory":
            await store.close()
    return {k: statistics.median(v) for k, v in figures.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="items (repeatable)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    sizes = args.n or [1000, 10_000]
    print("| N | store | static µs/step | foreach µs/instance | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for where in ("memory", "sqlite"):
                f = asyncio.run(measure(n, args.rounds, where, Path(tmp)))
                ratio = f["foreach"] / f["static"]
                print(
                    f"| {n:,} | {where} | {f['static'] * 1e6:.1f} | {f['foreach'] * 1e6:.1f} "
                    f"| {ratio:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
