"""Templated steps against plain ones, this tree next to another checkout (issue 12).

    git worktree add /tmp/before <commit>
    uv run python bench/templated.py --before /tmp/before            # ~4 min on 2 cores
    uv run python bench/templated.py --before /tmp/before --trials 3 --cases chain_1000_tmpl

Two measurements, each alternating the trees trial by trial:

  tutti run   `python -m tutti_mcp run SPEC --json` in a fresh process (every template compiled
              for the first time, as a user's `tutti run` does), us/step = the run's
              metrics.wall_s / steps; sqlite (the default) and in memory
              (`state_persistence: false`)
  cpu         in a fresh process per tree: engine.execute on the case, CPU time of the
              process (all threads) / steps, median of the trials; cold = the template
              caches emptied before each run, warm = kept (a server running a spec again).
              CPU time hardly moves when other processes load the machine; wall time does.

Both trees run with this tree's virtualenv; the specs come from this tree's dagbench.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH)]

import dagbench  # noqa: E402

CASES = ("chain_1000_tmpl", "chain_1000", "realistic_20")

# Run inside each tree (cwd = the tree, so `tutti_mcp` is that tree's package).
_CPU = """
import asyncio, gc, json, statistics, sys, time
sys.path[:0] = [sys.argv[1], {bench!r}]
import tutti_mcp.engine.templating as T
assert T.__file__.startswith(sys.argv[1]), T.__file__
import dagbench
from run import close_store, make_engine, open_store

def clear():
    if hasattr(T, "TEMPLATES"):
        T.TEMPLATES.clear(); T.EXPRESSIONS.clear()
    else:  # before the template cache: functools caches
        T._compiled.cache_clear(); T._compiled_expr.cache_clear()

async def one(spec, variant, cold):
    store = await open_store(variant, tempfile_dir)
    try:
        engine = make_engine(store)
        run_id = await engine.create_run(spec)
        gc.collect()
        if cold:
            clear()
        c0 = time.process_time()
        rec = await engine.execute(run_id)
        cpu = time.process_time() - c0
        assert rec.status.value == "succeeded", rec.status
        return cpu
    finally:
        await close_store(store)

async def main():
    out = {{}}
    for case in sys.argv[3].split(","):
        dag, spec = dagbench.case(case)
        n = dag["n_steps"]
        reps = int(sys.argv[2]) * (10 if n < 100 else 1)
        for variant in ("mem", "sqlite"):
            for cold in (True, False):
                await one(spec, variant, cold)
                xs = [await one(spec, variant, cold) for _ in range(reps)]
                out[f"{{case}} {{variant}} {{'cold' if cold else 'warm'}}"] = 1e6 * statistics.median(xs) / n
    print(json.dumps(out))

tempfile_dir = sys.argv[4]
asyncio.run(main())
"""


def cli_run(tree: Path, spec: Path, db: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "tutti_mcp", "--db", str(db), "run", str(spec), "--json"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    run = json.loads(out.stdout)
    if run["status"] != "succeeded":
        raise RuntimeError(f"{spec.name} in {tree}: {run['status']}: {run.get('error')}")
    metrics = run["metrics"]
    return 1e6 * float(metrics["wall_s"]) / int(metrics["steps"])


def cell(xs: list[float]) -> str:
    return f"{statistics.median(xs):.0f} [{min(xs):.0f}-{max(xs):.0f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args()
    trees = {"before": a.before.resolve(), "after": ROOT}
    cases = a.cases.split(",")
    cli: dict[tuple[str, str, str], list[float]] = {}
    cpu: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tutti-templated-") as tmp:
        specs: dict[tuple[str, str], Path] = {}
        for case in cases:
            spec: dict[str, Any] = dagbench.case(case)[1]
            for store in ("sqlite", "mem"):
                if store == "mem":
                    spec = {**spec, "optimization": {"state_persistence": False}}
                path = Path(tmp) / f"{case}-{store}.json"
                path.write_text(json.dumps(spec), encoding="utf-8")
                specs[case, store] = path
        for trial in range(a.trials):
            order = list(trees.items())
            if trial % 2:
                order.reverse()
            print(f"trial {trial + 1}/{a.trials}", file=sys.stderr, flush=True)
            for (case, store), path in specs.items():
                for name, tree in order:
                    db = Path(tmp) / f"{name}-{trial}-{case}.db"
                    cli.setdefault((case, store, name), []).append(cli_run(tree, path, db))
            for name, tree in order:
                code = _CPU.format(bench=str(BENCH))
                out = subprocess.run(
                    [sys.executable, "-c", code, str(tree), "3", ",".join(cases), tmp],
                    cwd=tree,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=True,
                )
                for key, us in json.loads(out.stdout.strip().splitlines()[-1]).items():
                    cpu[name].setdefault(key, []).append(us)
    print(
        f"tutti run: us/step = metrics.wall_s / steps, fresh process per run; "
        f"median [min-max] of {a.trials} trials; load average {load0:.1f} -> "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus"
    )
    print(f"{'case':<17}{'store':<8}{'before':>20}{'after':>20}")
    for case in cases:
        for store in ("sqlite", "mem"):
            b, f = cli[case, store, "before"], cli[case, store, "after"]
            print(f"{case:<17}{store:<8}{cell(b):>20}{cell(f):>20}")
    print("")
    print("engine.execute in process: CPU us/step (all threads); cold = no compiled templates")
    print(f"{'case':<17}{'store':<8}{'templates':<11}{'before':>20}{'after':>20}")
    for key in cpu["after"]:
        case, store, temp = key.split()
        print(
            f"{case:<17}{store:<8}{temp:<11}{cell(cpu['before'][key]):>20}"
            f"{cell(cpu['after'][key]):>20}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
