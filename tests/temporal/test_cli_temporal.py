"""The `tutti` commands with TUTTI_BACKEND=temporal: a real `tutti worker` process takes
the steps; `run` follows the run to its gate, `approve` answers it (an update) and follows
it to the end, `show` and `runs` read it back from Temporal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.temporal.devserver import DevServer
from tutti_mcp.server.cli import main
from tutti_mcp.server.exit_codes import EXIT_OK, EXIT_WAITING

ROOT = Path(__file__).resolve().parents[2]

GATED = """
name: gated-temporal
inputs:
  who: {default: world}
steps:
  - id: plan
    op: template
    args: "greet ${inputs.who}"
  - id: confirm
    depends_on: [plan]
    approve: "Go ahead with ${plan.output}?"
  - id: apply
    depends_on: [confirm]
    op: template
    args: "done: ${plan.output}"
"""


@pytest.fixture
def on_temporal(
    devserver: DevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """This process's `tutti` on Temporal, and one `tutti worker` process on its queue."""
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    env = {
        "TUTTI_BACKEND": "temporal",
        "TUTTI_TEMPORAL_ADDRESS": devserver.address,
        "TUTTI_TEMPORAL_TASK_QUEUE": queue,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TUTTI_ALLOW_SHELL", raising=False)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tutti_mcp", "--db", str(tmp_path / "worker.db"), "worker"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield queue
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=30)


def tutti(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_waits_at_the_gate_approve_finishes_it_and_show_reads_it(
    on_temporal: str, devserver: DevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "gated.yaml"
    spec.write_text(GATED)
    db = str(tmp_path / "cli.db")

    code, out, err = tutti(capsys, "--db", db, "run", str(spec), "--input", "who=temporal")
    assert code == EXIT_WAITING, (out, err)
    assert "on Temporal" in err and "confirm" in out
    # the commands it suggests find the run on Temporal as typed
    assert (
        f"TUTTI_BACKEND=temporal TUTTI_TEMPORAL_ADDRESS={devserver.address} "
        f"TUTTI_TEMPORAL_TASK_QUEUE={on_temporal}"
    ) in out.replace("\n", " ")
    run_id = err.split("run ", 1)[1].split(" ", 1)[0]

    code, out, err = tutti(capsys, "--db", db, "approve", run_id, "confirm", "--yes")
    assert code == EXIT_OK, (out, err)
    assert "approved" in err and "done: greet temporal" in out

    code, out, _ = tutti(capsys, "--db", db, "show", run_id, "--json")
    shown = json.loads(out)
    assert shown["status"] == "succeeded"
    assert shown["steps"]["confirm"]["output"]["approved"] is True

    code, out, _ = tutti(capsys, "--db", db, "runs", "--json")
    assert run_id in {r["run_id"] for r in json.loads(out)}
