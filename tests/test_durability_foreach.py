"""A real crash in the middle of a 1,000-instance `foreach`: `tutti run` is SIGKILLed once
some instances have committed, and `tutti resume` finishes the run. No committed instance
runs again, every instance is done, and the step's output holds all of them in order.

Each instance appends a line to its own marker file, so the number of lines is the number
of times it ran."""

from __future__ import annotations

import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.test_durability import kill_when, tutti, tutti_cmd

N = 1000
SCRIPT = 'echo run >> "$MARK/$I"; echo "done $I"'


def spec_yaml() -> str:
    work = {
        "id": "work",
        "foreach": {"items": list(range(N)), "max_concurrency": 8},
        "argv": ["sh", "-c", SCRIPT],
        "env": {"MARK": "${inputs.marks}", "I": "${item}"},
        "timeout": 30,
    }
    spec = {
        "name": "fanout",
        "inputs": {"marks": {"type": "string", "required": True}},
        "steps": [work, {"id": "total", "args": "${work.outputs | length}"}],
    }
    return json.dumps(spec)  # JSON is YAML


def committed_instances(db: Path) -> set[str] | None:
    if not db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            rows = conn.execute("SELECT step_id FROM checkpoints WHERE step_id LIKE 'work[%'")
            return {r[0] for r in rows}
    except sqlite3.OperationalError:  # the schema is being created
        return None


def runs_of(marks: Path) -> dict[int, int]:
    return {
        i: len((marks / str(i)).read_text().splitlines()) if (marks / str(i)).exists() else 0
        for i in range(N)
    }


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and sh")
def test_a_fan_out_killed_mid_flight_resumes_without_rerunning_committed_instances(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "fanout.json"
    spec.write_text(spec_yaml(), encoding="utf-8")
    marks = tmp_path / "marks"
    marks.mkdir()
    db = tmp_path / "fanout.db"
    args = tutti_cmd(db, "run", str(spec), "--json", "--input", f"marks={marks}")
    ready = lambda: len(committed_instances(db) or ()) >= 100  # noqa: E731
    kill_when(args, tmp_path / "run.log", ready, "100 instances committed", timeout=90)
    committed = committed_instances(db)
    assert committed is not None and 100 <= len(committed) < N
    before = runs_of(marks)
    assert all(before[int(sid[5:-1])] == 1 for sid in committed)

    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
    resumed = tutti(db, "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded"
    assert result["outputs"]["total"] == str(N)
    assert result["outputs"]["work"] == [f"done {i}" for i in range(N)]

    after = runs_of(marks)
    assert {i: after[int(s[5:-1])] for i, s in enumerate(sorted(committed))} == dict.fromkeys(
        range(len(committed)), 1
    ), "a committed instance ran again"
    assert all(1 <= n <= 2 for n in after.values()), "every instance ran, at most twice"
