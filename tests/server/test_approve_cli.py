"""`tutti approve RUN STEP --yes|--no [--note TEXT]`: a run that stopped at a gate exits 3;
the answer is recorded (by "cli", with the OS user), the run resumes in the command, and it
exits with the run's code."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.server.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, EXIT_WAITING, main

ROOT = Path(__file__).resolve().parents[2]

GATED = """
name: gated-edit
steps:
  - id: plan
    value: {count: 2}
  - id: confirm
    approve: "Write ${plan.output.count} lines to out.txt?"
    preview: "line 1, line 2"
  - id: write
    depends_on: [confirm]
    argv: ["sh", "-c", "printf 'line 1\\nline 2\\n' > out.txt"]
"""

TWO_GATES = """
name: two-gates
steps:
  - id: first
    approve: "First?"
  - id: second
    approve: "Second?"
    depends_on: [first]
  - id: done
    depends_on: [second]
    args: "both approved"
"""


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TUTTI_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["TUTTI_DB"] = str(db)
    return env


async def _tutti(db: Path, *args: str) -> tuple[int, Any]:
    """`python -m tutti_mcp ARGS --json` in a process of its own: (exit code, its JSON)."""
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "tutti_mcp", *args, "--json"],
            cwd=ROOT,
            env=_env(db),
            check=False,
        )
    return done.returncode, json.loads(done.stdout)


@pytest.mark.anyio
async def test_a_run_stopped_at_a_gate_exits_3_and_tutti_approve_yes_finishes_it(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "gated.yaml"
    spec.write_text(GATED, encoding="utf-8")
    db = tmp_path / "runs.db"

    code, run = await _tutti(db, "run", str(spec))
    assert code == EXIT_WAITING, run
    assert run["steps"]["confirm"]["status"] == "waiting"
    assert not (tmp_path / "out.txt").exists()

    code, done = await _tutti(db, "approve", run["run_id"], "confirm", "--yes", "--note", "ok")
    assert code == EXIT_OK, done
    decision = done["outputs"]["confirm"]
    assert (decision["approved"], decision["note"], decision["by"]) == (True, "ok", "cli")
    assert decision["user"] == getpass.getuser()
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "line 1\nline 2\n"


def _tutti_here(
    db: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    code = main(["--db", str(db), *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "TUTTI_ALLOW_SHELL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_tutti_approve_no_fails_the_run_with_the_note_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "gated.yaml"
    spec.write_text(GATED, encoding="utf-8")
    db = tmp_path / "runs.db"
    code, run = _tutti_here(db, capsys, "run", str(spec))
    assert code == EXIT_WAITING

    code, done = _tutti_here(
        db, capsys, "approve", run["run_id"], "confirm", "--no", "--note", "not now"
    )
    assert code == EXIT_FAILED
    assert done["error"] == "gate 'confirm' rejected: not now"
    assert done["steps"]["confirm"]["detail"]["decision"]["by"] == "cli"
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.usefixtures("clean_env")
def test_tutti_approve_exits_3_again_when_another_gate_waits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "two.yaml"
    spec.write_text(TWO_GATES, encoding="utf-8")
    db = tmp_path / "runs.db"
    _, run = _tutti_here(db, capsys, "run", str(spec))
    rid = run["run_id"]

    code, after = _tutti_here(db, capsys, "approve", rid, "first", "--yes")
    assert code == EXIT_WAITING
    assert after["steps"]["second"]["status"] == "waiting"
    code, done = _tutti_here(db, capsys, "approve", rid, "second", "--yes")
    assert code == EXIT_OK
    assert done["outputs"]["done"] == "both approved"


@pytest.mark.usefixtures("clean_env")
def test_tutti_approve_refuses_a_step_that_is_not_a_waiting_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "two.yaml"
    spec.write_text(TWO_GATES, encoding="utf-8")
    db = tmp_path / "runs.db"
    _, run = _tutti_here(db, capsys, "run", str(spec))
    rid = run["run_id"]

    assert main(["--db", str(db), "approve", rid, "done", "--yes"]) == EXIT_USAGE
    assert "step 'done' of run" in capsys.readouterr().err
    assert main(["--db", str(db), "approve", rid, "second", "--yes"]) == EXIT_USAGE
    assert "second" in capsys.readouterr().err
    assert main(["--db", str(db), "approve", rid, "nope", "--no"]) == EXIT_USAGE
    assert "nope" in capsys.readouterr().err
