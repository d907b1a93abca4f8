"""A real crash in the middle of a pipeline: `tutti run` is SIGKILLed once some items have
reached the sink, and `tutti resume` finishes the run. An item whose shell stage was
committed does not run it again, every item reaches the JSONL sink exactly once and in
order, and none is lost.

The shell stage appends a line to the item's marker file, so the number of lines is the
number of times it ran for that item."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.test_durability import cli_env, tutti_cmd

N = 400
SCRIPT = 'echo run >> "$MARK/$I"; echo "done $I"'


def spec_json() -> str:
    stages = [
        {"id": "name", "args": "item-${item}"},
        {
            "id": "work",
            "argv": ["sh", "-c", SCRIPT],
            "env": {"MARK": "${inputs.marks}", "I": "${item}"},
            "concurrency": 4,
            "timeout": 30,
        },
        {"id": "wrap", "args": "<${work.output}|${name.output}>"},
    ]
    return json.dumps(
        {
            "name": "stream",
            "type": "pipeline",
            "inputs": {"marks": {"type": "string", "required": True}},
            "source": {"items": list(range(N))},
            "stages": stages,
            "buffer": 8,
            "sink": {"jsonl": "out.jsonl"},
        }
    )


def rows(db: Path) -> tuple[int, dict[int, tuple[int, str]]] | None:
    """The pipeline's committed frontier and rows (item -> stages done, state)."""
    if not db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            mark = conn.execute("SELECT frontier, sunk FROM pipeline_marks").fetchone()
            items = conn.execute("SELECT item, stage, state FROM pipeline_items").fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return None
    if mark is None:
        return None
    return mark[1], {r[0]: (r[1], r[2]) for r in items} | {-1: (mark[0], "frontier")}


def runs_of(marks: Path) -> dict[int, int]:
    return {
        i: len((marks / str(i)).read_text().splitlines()) if (marks / str(i)).exists() else 0
        for i in range(N)
    }


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and sh")
def test_a_pipeline_killed_mid_stream_resumes_without_losing_or_redoing_items(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "stream.json"
    spec.write_text(spec_json(), encoding="utf-8")
    marks = tmp_path / "marks"
    marks.mkdir()
    db = tmp_path / "stream.db"
    log = tmp_path / "run.log"
    cmd = tutti_cmd(db, "run", str(spec), "--json", "--input", f"marks={marks}")
    with open(log, "w") as out:
        # the workspace is the current directory: the sink's file lands in tmp_path
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=cli_env(), stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 90
        while (seen := rows(db)) is None or seen[0] < 60:
            assert proc.poll() is None, f"tutti run ended before the kill:\n{log.read_text()}"
            assert time.monotonic() < deadline, "no 60 items reached the sink in time"
            time.sleep(0.01)  # polling another process's database
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    at_kill = rows(db)
    assert at_kill is not None and 60 <= at_kill[0] < N
    frontier = at_kill[1].pop(-1)[0]
    # past the shell stage when the kill came: committed there, so it must not run again
    committed = {i for i in range(frontier) if i not in at_kill[1]}
    committed |= {i for i, (stage, state) in at_kill[1].items() if stage >= 2 or state == "sunk"}
    before = runs_of(marks)
    assert all(before[i] == 1 for i in committed)

    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
    resumed = subprocess.run(
        tutti_cmd(db, "resume", run_id, "--json"),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded"
    assert result["outputs"]["pipeline"] == {
        "sink": "jsonl",
        "path": "out.jsonl",
        "items": N,
        "dead": 0,
    }
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["output"] for x in lines] == [f"<done {i}|item-{i}>" for i in range(N)]

    after = runs_of(marks)
    assert {i: after[i] for i in sorted(committed)} == dict.fromkeys(sorted(committed), 1), (
        "a committed item ran its stage again"
    )
    assert all(1 <= n <= 2 for n in after.values()), "every item ran, at most twice"
