"""kill -9 in the middle of a pipeline, then resume: how many items are lost and how many
committed items are processed again (tutti's promise: none of either).

Each trial starts a worker process running a 100,000-item pipeline (a builtin stage, a
counting stage, a builtin stage, a JSONL sink) on a SQLite database, SIGKILLs it once a
random number of items have reached the sink, resumes the run in a new worker, and counts.
The counting stage appends the item's index to a log file (O_APPEND, one write per call)
before it returns, so the log says how many times each item was processed there; an item
committed past that stage at the kill must appear exactly once.

    uv run python bench/pipeline_kill.py                  # 20 trials of 100,000 items
    uv run python bench/pipeline_kill.py --trials 3 --n 20000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SPEC = {
    "name": "kill-pipeline",
    "type": "pipeline",
    "source": {"lines": "items.txt"},
    "stages": [
        {"id": "a", "args": "n${item}"},
        {"id": "count", "argv": ["count"], "concurrency": 4},
        {"id": "c", "args": "${count.output}|${a.output}"},
    ],
    "buffer": 100,
    "sink": {"jsonl": "out.jsonl"},
}


# -- the worker: `tutti run`, with a stage that leaves a trace ------------------------------
def worker(db: str, root: str, what: str, arg: str) -> None:
    import anyio

    from tutti_mcp.engine.config import EngineConfig
    from tutti_mcp.engine.executors.base import StepCall, StepOutcome
    from tutti_mcp.engine.executors.builtin import BuiltinExecutor
    from tutti_mcp.engine.service import Engine
    from tutti_mcp.engine.spec import ExecutorKind
    from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

    log = os.open(Path(root) / "count.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    class Counting:
        async def execute(self, call: StepCall) -> StepOutcome:
            os.write(log, f"{call.context['item_index']}\n".encode())
            return StepOutcome(f"c{call.context['item']}")

    async def main() -> None:
        async with await SqliteRunStore.open(db) as store:
            if what == "resume":
                await store.mark_orphans_interrupted()
            executors: dict[ExecutorKind, Any] = {
                ExecutorKind.BUILTIN: BuiltinExecutor(),
                ExecutorKind.SHELL: Counting(),
            }
            engine = Engine(store, executors, EngineConfig(workspace=Path(root)))
            if what == "run":
                run = await engine.run(json.loads(arg))
            else:
                run = await engine.resume(arg)
            print(json.dumps({"status": run.status.value, "error": run.error}), flush=True)

    anyio.run(main)


# -- the trials ---------------------------------------------------------------------------
def sunk(db: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute("SELECT sunk FROM pipeline_marks").fetchone()
    except sqlite3.OperationalError:
        return 0
    return 0 if row is None else int(row[0])


def committed_past_count(db: Path) -> set[int]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (frontier,) = conn.execute("SELECT frontier FROM pipeline_marks").fetchone()
        rows = conn.execute("SELECT item, stage, state FROM pipeline_items").fetchall()
    seen = {r[0] for r in rows}
    out = {i for i in range(frontier) if i not in seen}
    return out | {item for item, stage, state in rows if stage >= 2 or state == "sunk"}


def cmd(db: Path, root: Path, what: str, arg: str) -> list[str]:
    return [sys.executable, __file__, "--worker", str(db), str(root), what, arg]


def trial(n: int, rng: random.Random) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="tutti-kill-pipeline-"))
    (root / "items.txt").write_text("".join(f"{i}\n" for i in range(n)))
    db = root / "run.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    target = rng.randint(n // 100, n - n // 20)
    proc = subprocess.Popen(cmd(db, root, "run", json.dumps(SPEC)), env=env, cwd=root)
    deadline = time.monotonic() + 300
    while sunk(db) < target:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the run ended or stalled before the kill (target {target})")
        time.sleep(0.005)  # polling another process's database
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    at_kill = sunk(db)
    committed = committed_past_count(db)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
    done = subprocess.run(
        cmd(db, root, "resume", run_id),
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    counts = Counter(int(x) for x in (root / "count.log").read_text().split())
    lines = [json.loads(x)["item_index"] for x in (root / "out.jsonl").read_text().splitlines()]
    return {
        "killed_at_sunk": at_kill,
        "status": result["status"],
        "committed_at_kill": len(committed),
        "committed_redone": sum(1 for i in committed if counts[i] != 1),
        "lost": sum(1 for i in range(n) if counts[i] == 0),
        "sink_missing": n - len(set(lines)),
        "sink_duplicates": len(lines) - len(set(lines)),
        "sink_in_order": lines == sorted(lines),
        "uncommitted_run_twice": sum(1 for i in range(n) if counts[i] == 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args()
    rng = random.Random(args.seed)
    trials = []
    for t in range(args.trials):
        r = trial(args.n, rng)
        trials.append(r)
        print(json.dumps({"trial": t + 1, **r}), flush=True)
    keys = ("committed_redone", "lost", "sink_missing", "sink_duplicates")
    total = {k: sum(r[k] for r in trials) for k in keys}
    total["all_succeeded"] = all(r["status"] == "succeeded" for r in trials)
    total["all_in_order"] = all(r["sink_in_order"] for r in trials)
    total["committed_at_kill"] = sum(r["committed_at_kill"] for r in trials)
    print(json.dumps({"trials": args.trials, "items": args.n, **total}, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(*sys.argv[2:6])
    else:
        main()
