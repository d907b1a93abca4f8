"""Durability with a real crash: `tutti run` is SIGKILLed in the middle of a workflow, and
`tutti resume` finishes it. Committed steps never run again; steps that were running at
the kill run again (at-least-once), and the result equals an uninterrupted run's.

Each shell step appends a line to its own marker file when it starts, so the number of
lines is the number of times it ran."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a, z -> b1, b2, b3 -> c1, c2 -> final: two roots, a fan-out, a join, one combining step.
# Durations are staggered so that commits happen while other steps run: a step's start is
# made durable by the next commit, so "running" shows in the database only then.
STEPS: dict[str, tuple[list[str], float]] = {
    "a": ([], 0.3),
    "z": ([], 0.5),
    "b1": (["a"], 0.4),
    "b2": (["a"], 0.7),
    "b3": (["a"], 0.9),
    "c1": (["b1", "b2"], 0.3),
    "c2": (["b3", "z"], 0.3),
    "final": (["a", "z", "b1", "b2", "b3", "c1", "c2"], 0.2),
}
DEPS = {sid: deps for sid, (deps, _) in STEPS.items()}
SCRIPT = 'echo run >> "$MARK/$STEP"; sleep "$SECONDS_"; echo "$STEP-out[$IN]"'


def workflow_yaml() -> str:
    lines = [
        "name: durable",
        "inputs:",
        "  marks: {type: string, required: true}",
        "steps:",
    ]
    for sid, (deps, seconds) in STEPS.items():
        ins = ",".join("${" + d + ".output}" for d in deps)
        env = {"MARK": "${inputs.marks}", "STEP": sid, "IN": ins, "SECONDS_": str(seconds)}
        lines += [
            f"  - id: {sid}",
            f"    argv: {json.dumps(['sh', '-c', SCRIPT])}",
            f"    env: {json.dumps(env)}",
            f"    depends_on: {json.dumps(deps)}",
            "    timeout: 30",
        ]
    return "\n".join(lines) + "\n"


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TUTTI_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def tutti_cmd(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tutti_mcp", "--db", str(db), *args]


def kill_when(
    args: list[str],
    log: Path,
    ready: Callable[[], bool],
    what: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    after: Callable[[], None] | None = None,
) -> None:
    """Run `args` (a `tutti` command) in a subprocess and SIGKILL it as soon as `ready()`
    holds (checked every 10 ms: polling another process's database or files); fails if it
    ends first or `what` does not happen within `timeout`. `after` runs once it is dead."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env or cli_env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, f"tutti ended before the kill:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{what}: not in {timeout:g} s"
            time.sleep(0.01)  # polling another process's state
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if after is not None:
            after()
    assert proc.returncode == -signal.SIGKILL


def tutti(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tutti_cmd(db, *args), cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120
    )


def counts(marks: Path) -> dict[str, int]:
    """How many times each step has started."""
    return {
        sid: len((marks / sid).read_text().splitlines()) if (marks / sid).exists() else 0
        for sid in DEPS
    }


@dataclass
class DbState:
    run_id: str
    run_status: str
    steps: dict[str, str]
    checkpointed: set[str]


def read_state(db: Path) -> DbState | None:
    """The run as another process sees it (read-only), or None while it does not exist yet."""
    if not db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            run = conn.execute("SELECT id, status FROM runs").fetchone()
            if run is None:
                return None
            steps = dict(
                conn.execute("SELECT step_id, status FROM steps WHERE run_id = ?", (run[0],))
            )
            cps = {
                r[0]
                for r in conn.execute("SELECT step_id FROM checkpoints WHERE run_id = ?", (run[0],))
            }
    except sqlite3.OperationalError:  # the schema is being created
        return None
    return DbState(run[0], run[1], steps, cps)


@dataclass
class Killed:
    db: Path
    spec: Path
    marks: Path
    state: DbState  # read after the process died: everything it committed


def run_and_kill(tmp_path: Path) -> Killed:
    """Start `tutti run`, wait until at least 2 checkpoints are committed and a step is
    running, then SIGKILL it."""
    spec = tmp_path / "durable.yaml"
    spec.write_text(workflow_yaml(), encoding="utf-8")
    marks = tmp_path / "marks"
    marks.mkdir()
    db = tmp_path / "killed.db"

    def ready() -> bool:
        state = read_state(db)
        return bool(state and len(state.checkpointed) >= 2 and "running" in state.steps.values())

    args = tutti_cmd(db, "run", str(spec), "--json", "--input", f"marks={marks}")
    kill_when(args, tmp_path / "run.log", ready, "a checkpoint with a running step")
    after = read_state(db)
    assert after is not None
    assert after.run_status == "running"  # nobody has looked yet: the row still says running
    return Killed(db, spec, marks, after)


def recorded_s(db: Path, run_id: str) -> float:
    """From the run's (latest) start to the last step time recorded since."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (start,) = conn.execute("SELECT started_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        (last,) = conn.execute(
            "SELECT max(max(coalesce(started_at, 0), coalesce(finished_at, 0))) FROM steps "
            "WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    return float(last - start)


def events(db: Path, run_id: str) -> list[tuple[str, str | None, Any]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT kind, step_id, data FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [(k, s, None if d is None else json.loads(d)) for k, s, d in rows]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and sh")
def test_a_run_killed_mid_flight_resumes_without_rerunning_committed_steps(tmp_path: Path) -> None:
    killed = run_and_kill(tmp_path)
    committed = killed.state.checkpointed
    before = counts(killed.marks)
    assert len(committed) >= 2
    assert all(before[s] == 1 for s in committed)
    assert committed != set(DEPS)
    killed_s = recorded_s(killed.db, killed.state.run_id)

    resumed = tutti(killed.db, "resume", killed.state.run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded"
    # the killed process's segment counts, up to the last step time it recorded
    m = result["metrics"]
    assert m["segments"] == 2
    assert m["wall_s"] >= m["active_s"] >= round(killed_s, 4) > 0

    after = counts(killed.marks)
    twice = {s for s, n in after.items() if n == 2}
    assert {s: after[s] for s in committed} == dict.fromkeys(committed, 1)  # exactly once
    assert all(1 <= n <= 2 for n in after.values()), after  # at-least-once, never more
    assert twice, "the kill interrupted a running step, which resume must run again"
    assert twice.isdisjoint(committed)
    interrupted_in_db = {s for s, st in killed.state.steps.items() if st == "running"} - committed
    assert interrupted_in_db <= twice

    # the resuming process found the run orphaned and said so
    log = events(killed.db, killed.state.run_id)
    assert ("run_interrupted", None, {"reason": "owner process gone"}) in log
    reset = {s for k, s, _ in log if k == "step_reset"}
    assert reset.isdisjoint(committed)
    assert interrupted_in_db <= reset

    # the same outputs as a run that was never interrupted
    clean_marks = tmp_path / "clean-marks"
    clean_marks.mkdir()
    clean = tutti(
        tmp_path / "clean.db", "run", str(killed.spec), "--json", "--input", f"marks={clean_marks}"
    )
    assert clean.returncode == 0, clean.stderr
    expected = json.loads(clean.stdout)
    assert counts(clean_marks) == dict.fromkeys(DEPS, 1)
    assert result["outputs"] == expected["outputs"]
    assert result["outputs"]["final"].startswith("final-out[a-out[],z-out[],b1-out[a-out[]]")
    assert {s["status"] for s in result["steps"].values()} == {"succeeded"}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and sh")
def test_runs_lists_a_killed_run_as_interrupted(tmp_path: Path) -> None:
    killed = run_and_kill(tmp_path)

    listed = tutti(killed.db, "runs", "--json")

    assert listed.returncode == 0, listed.stderr
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == [
        (killed.state.run_id, "interrupted")
    ]
    state = read_state(killed.db)
    assert state is not None
    assert state.run_status == "interrupted"
    was_running = {s for s, st in killed.state.steps.items() if st == "running"}
    assert was_running
    assert {s for s, st in state.steps.items() if st == "interrupted"} == was_running
