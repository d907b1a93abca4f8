"""kill -9 in the middle of a `foreach` fan-out, then resume: how many committed instances
run again (tutti's promise: none), and whether every instance is done.

Each trial starts `tutti run` on a fan-out of N shell instances (each appends a line to its
own marker file, so the lines count its runs), SIGKILLs it once a random number of
instances have committed, resumes it with `tutti resume`, and counts. The comparison the
issue quotes: after a kill -9 under its default durability, LangGraph 1.2.22 re-ran the
side effects of 18,111 of 20,000 items over 20 trials.

    uv run python bench/kill_fanout.py                  # 20 trials of 1,000 instances
    uv run python bench/kill_fanout.py --trials 5 --n 200
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
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = 'echo run >> "$MARK/$I"; echo "done $I"'


def spec(n: int) -> str:
    work = {
        "id": "work",
        "foreach": {"items": list(range(n)), "max_concurrency": 8},
        "argv": ["sh", "-c", SCRIPT],
        "env": {"MARK": "${inputs.marks}", "I": "${item}"},
    }
    return json.dumps(
        {
            "name": "kill-fanout",
            "inputs": {"marks": {"required": True}},
            "steps": [work, {"id": "total", "args": "${work.outputs | length}"}],
        }
    )


def tutti(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tutti_mcp", "--db", str(db), *args]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TUTTI_"))}


def committed(db: Path) -> set[int]:
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            rows = conn.execute("SELECT step_id FROM checkpoints WHERE step_id LIKE 'work[%'")
            return {int(r[0][5:-1]) for r in rows}
    except sqlite3.OperationalError:  # not created yet
        return set()


def trial(n: int, tmp: Path, rng: random.Random) -> dict[str, int]:
    (tmp / "spec.json").write_text(spec(n))
    marks = tmp / "marks"
    marks.mkdir()
    db = tmp / "runs.db"
    kill_at = rng.randint(n // 10, n * 9 // 10)
    proc = subprocess.Popen(
        tutti(db, "run", str(tmp / "spec.json"), "--json", "--input", f"marks={marks}"),
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(committed(db)) < kill_at and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("no progress in 300 s")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = committed(db)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
    resumed = subprocess.run(
        tutti(db, "resume", run_id, "--json"),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = json.loads(resumed.stdout)
    runs = {
        i: len((marks / str(i)).read_text().splitlines()) if (marks / str(i)).exists() else 0
        for i in range(n)
    }
    return {
        "committed_at_kill": len(before),
        "committed_rerun": sum(1 for i in before if runs[i] != 1),
        "uncommitted_rerun": sum(1 for i in range(n) if i not in before and runs[i] > 1),
        "not_done": sum(1 for i in range(n) if runs[i] == 0),
        "succeeded": int(result["status"] == "succeeded" and result["outputs"]["total"] == str(n)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    totals: dict[str, int] = {}
    for t in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            got = trial(args.n, Path(tmp), rng)
        print(f"trial {t + 1}: {got}", flush=True)
        for k, v in got.items():
            totals[k] = totals.get(k, 0) + v
    print(
        f"{args.trials} trials of {args.n} instances: {totals['committed_at_kill']} instances "
        f"committed before the kill, {totals['committed_rerun']} of them ran again; "
        f"{totals['uncommitted_rerun']} instances running at the kill ran again "
        f"(at-least-once); {totals['not_done']} never ran; {totals['succeeded']} of "
        f"{args.trials} runs resumed to success with all {args.n} outputs"
    )


if __name__ == "__main__":
    main()
