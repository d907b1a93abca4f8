"""What creating a run costs for a spec the engine has seen before (issue 12: at most
0.2 ms for a 20-step run): parse, compile, preflight, plan and the run's rows, on the
in-memory store, after a warm-up.

    uv run python bench/create_run.py             # 500 creates, median of 5 rounds
    uv run python bench/create_run.py --first     # also a spec never seen (a fresh engine each)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore

# 20 templated steps, each reading the one before: every step has its own text.
SPEC: dict[str, Any] = {
    "name": "c20",
    "inputs": {"x": {"type": "string", "default": "a"}},
    "steps": [{"id": "s0", "op": "template", "args": "${inputs.x}"}]
    + [
        {"id": f"s{i}", "op": "template", "args": f"${{s{i - 1}.output}}-{i}"} for i in range(1, 20)
    ],
}


def engine() -> Engine:
    return Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: BuiltinExecutor()})


async def seen(n: int) -> float:
    e = engine()
    for _ in range(50):
        await e.create(SPEC)
    t = time.perf_counter()
    for _ in range(n):
        await e.create(SPEC)
    return (time.perf_counter() - t) / n


async def first(n: int) -> float:
    walls = []
    for _ in range(n):
        e = engine()
        t = time.perf_counter()
        await e.create(SPEC)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--first", action="store_true")
    args = ap.parse_args()
    rounds = [asyncio.run(seen(args.n)) for _ in range(args.rounds)]
    print(f"create, spec seen before: {statistics.median(rounds) * 1e3:.3f} ms (target 0.2 ms)")
    if args.first:
        print(f"create, spec never seen:  {asyncio.run(first(50)) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
