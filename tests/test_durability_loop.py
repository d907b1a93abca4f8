"""A real crash inside a loop: `tutti run` is SIGKILLed while iteration 3's step runs, and
`tutti resume` continues in iteration 3. Iterations 1 and 2 never run again; iteration 3's
step runs again (it had not committed), and the loop ends where an uninterrupted one does.

Each iteration's step appends a line to a marker file named after the iteration; the first
time iteration 3 runs it waits to be killed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.test_durability import kill_when, tutti, tutti_cmd

# iteration 3 waits the first time (the marker file did not exist yet): it is killed there
SCRIPT = (
    'first=1; [ -e "$MARK/$K" ] && first=0; echo run >> "$MARK/$K"; '
    'if [ "$K" = 3 ] && [ "$first" = 1 ]; then echo $$ > "$MARK/waiting"; exec sleep 60; fi; '
    'echo "pass $K"'
)


def spec_json() -> str:
    spec = {
        "name": "looping",
        "inputs": {"marks": {"type": "string", "required": True}},
        "steps": [
            {
                "id": "refine",
                "loop": {
                    "steps": [
                        {
                            "id": "work",
                            "argv": ["sh", "-c", SCRIPT],
                            "env": {"MARK": "${inputs.marks}", "K": "${loop.iteration}"},
                            "timeout": 120,
                        }
                    ],
                    "until": "${loop.iteration >= 4}",
                    "max_iterations": 10,
                },
            },
            {"id": "final", "args": "${refine.output.work}"},
        ],
    }
    return json.dumps(spec)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and sh")
def test_a_loop_killed_in_iteration_3_resumes_in_iteration_3(tmp_path: Path) -> None:
    spec = tmp_path / "loop.json"
    spec.write_text(spec_json(), encoding="utf-8")
    marks = tmp_path / "marks"
    marks.mkdir()
    db = tmp_path / "loop.db"
    args = tutti_cmd(db, "run", str(spec), "--json", "--input", f"marks={marks}")
    kill_when(  # once iteration 3's step has started (and waits)
        args,
        tmp_path / "run.log",
        (marks / "waiting").exists,
        "iteration 3 started",
        after=lambda: _stop_orphan(marks / "waiting"),
    )
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
        committed = {r[0] for r in conn.execute("SELECT step_id FROM checkpoints")}
    assert committed == {"work#1", "work#2"}

    resumed = tutti(db, "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded"
    assert result["outputs"]["final"] == "pass 4"
    runs = {k: len((marks / k).read_text().splitlines()) for k in ("1", "2", "3", "4")}
    assert runs == {"1": 1, "2": 1, "3": 2, "4": 1}
    assert not (marks / "5").exists()


def _stop_orphan(pid_file: Path) -> None:
    """The killed process's shell step outlives it (as after a real crash): end it."""
    deadline = time.monotonic() + 10
    while pid_file.exists() and not pid_file.read_text().strip():  # being written
        assert time.monotonic() < deadline
        time.sleep(0.01)
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
