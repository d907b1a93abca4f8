"""workflow_plan and `tutti plan` show workflow memory: where each step's estimate comes
from (spec, history of N runs, default) and a summary of the workflow's recent runs.
(How history changes the plan itself: tests/engine/test_workflow_history.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.server.mcp_support import call, connect
from tutti_mcp.server.cli import EXIT_OK, main

DECIDES: dict[str, Any] = {
    "name": "decides",
    "steps": [
        {"id": "a", "op": "template", "args": "x"},
        {"id": "yes", "when": "${a.output == 'x'}", "op": "template", "args": "taken"},
        {"id": "no", "when": "${a.output == 'y'}", "op": "template", "args": "not taken"},
        {"id": "fixed", "op": "template", "args": "z", "estimate_s": 2},
    ],
}
DECISIONS = {
    "yes": {"when": "${a.output == 'x'}", "true": 2, "false": 0},
    "no": {"when": "${a.output == 'y'}", "true": 0, "false": 2},
}


@pytest.mark.anyio
async def test_workflow_plan_shows_estimate_sources_and_the_history_of_earlier_runs(
    mode: str,
) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            before = await call(c, "workflow_plan", spec=DECIDES)
            for _ in range(2):
                run = await call(c, "workflow_start", spec=DECIDES, wait_s=10)
                assert run["status"] == "succeeded", run
            after = await call(c, "workflow_plan", spec=DECIDES)
            other = await call(c, "workflow_plan", spec={**DECIDES, "name": "renamed"})

    assert before["history"] is None
    assert {sid: s["estimate_from"] for sid, s in before["steps"].items()} == {
        "a": "default",
        "yes": "default",
        "no": "default",
        "fixed": "spec",
    }
    assert {sid: s["estimate_from"] for sid, s in after["steps"].items()} == {
        "a": "history: median of 2 runs",
        "yes": "history: median of 2 runs",
        "no": "default",  # skipped both times: never measured
        "fixed": "spec",
    }
    history = after["history"]
    assert history["median_run_s"] >= 0
    assert history == {
        "runs": 2,
        "outcomes": {"succeeded": 2},
        "success_rate": 1.0,
        "median_run_s": history["median_run_s"],
        "decisions": DECISIONS,
    }
    assert after["steps"]["fixed"]["estimate_s"] == 2
    assert other["history"] is None  # history is kept per workflow name


def _tutti(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str]:
    code = main(["--db", str(db), *args])
    return code, capsys.readouterr().out


def test_tutti_plan_shows_the_same_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "TUTTI_ALLOW_SHELL", "TUTTI_MODELS"):
        monkeypatch.delenv(name, raising=False)
    db = tmp_path / "cli.db"
    spec = tmp_path / "decides.json"
    spec.write_text(json.dumps(DECIDES), encoding="utf-8")

    code, text = _tutti(capsys, db, "plan", str(spec))
    assert code == EXIT_OK
    assert "history: no finished runs of this workflow yet" in text
    assert not db.exists()  # planning creates no database
    for _ in range(2):
        assert _tutti(capsys, db, "run", str(spec), "--json")[0] == EXIT_OK

    code, out = _tutti(capsys, db, "plan", str(spec), "--json")
    plan = json.loads(out)
    assert code == EXIT_OK
    assert plan["steps"]["a"]["estimate_from"] == "history: median of 2 runs"
    assert plan["steps"]["fixed"]["estimate_from"] == "spec"
    assert plan["history"]["runs"] == 2
    assert plan["history"]["decisions"] == DECISIONS

    code, text = _tutti(capsys, db, "plan", str(spec))
    assert code == EXIT_OK
    assert "(history: median of 2 runs)" in text and "~2s (spec)" in text
    assert "history: 2 runs (succeeded 2); success rate 100%; median run" in text
    assert "yes when ${a.output == 'x'}: true 2, false 0" in text
