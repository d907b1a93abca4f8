"""The fan-out and loop examples, run as a user would with `tutti run --client`, answering
each waiting step with `tutti complete` (no API key)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.server.test_cli import ROOT, Tutti, db, run_json, tutti
from tutti_mcp.server.exit_codes import EXIT_OK, EXIT_WAITING

__all__ = ["db", "tutti"]  # the fixtures these tests use

REVIEW = str(ROOT / "examples" / "review-modules.yaml")
LOOP = str(ROOT / "examples" / "draft-loop.yaml")


def waiting(run: dict[str, Any]) -> list[str]:
    return [sid for sid, s in run["steps"].items() if s["status"] == "waiting"]


def test_the_module_review_fans_out_one_review_per_module_and_summarises(tutti: Tutti) -> None:
    modules = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "engine/execution/*.py"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    assert len(modules) > 3

    code, run = run_json(tutti, "run", REVIEW, "--client")
    assert (code, run["status"]) == (EXIT_WAITING, "waiting")
    assert waiting(run) == [f"review[{i}]" for i in range(len(modules))]
    first = run["steps"]["review[0]"]["detail"]["instructions"]
    assert f"Review the Python module {modules[0]} of this repository (" in first
    assert " lines, " in first and " functions, " in first  # its facts, from facts[0]

    run_id = run["run_id"]
    for i, module in enumerate(modules):
        code, _, _ = tutti("complete", run_id, f"review[{i}]", "--output", f"ok {module}")
        assert code == EXIT_OK
    code, run = run_json(tutti, "resume", run_id)
    assert (code, waiting(run)) == (EXIT_WAITING, ["summary"])
    summary = run["steps"]["summary"]["detail"]["instructions"]
    assert f"reviews of {len(modules)} modules" in summary
    assert f"- ok {modules[-1]}" in summary

    code, run = run_json(tutti, "complete", run_id, "summary", "--output", "all fine", "--resume")
    assert (code, run["status"], run["outputs"]["summary"]) == (EXIT_OK, "succeeded", "all fine")
    assert run["outputs"]["review"] == [f"ok {m}" for m in modules]


def test_the_draft_loop_revises_until_the_critique_approves(tutti: Tutti) -> None:
    code, run = run_json(tutti, "run", LOOP, "--client")
    assert (code, waiting(run)) == (EXIT_WAITING, ["draft#1"])
    run_id = run["run_id"]

    too_long = "SQLite " + "word " * 80
    code, run = run_json(tutti, "complete", run_id, "draft#1", "--output", too_long, "--resume")
    assert (code, waiting(run)) == (EXIT_WAITING, ["draft#2"])
    assert run["steps"]["critique#1"]["output"] == {
        "approved": False,
        "problems": ["too long: 81 words", "missing: resume"],
    }
    assert (
        "Fix these problems: too long: 81 words; missing: resume"
        in (run["steps"]["draft#2"]["detail"]["instructions"])
    )

    good = "Workflows that resume after a crash, with every step kept in SQLite."
    code, run = run_json(tutti, "complete", run_id, "draft#2", "--output", good, "--resume")
    assert (code, run["status"]) == (EXIT_OK, "succeeded")
    assert run["outputs"]["blurb"] == good
    assert "draft#3" not in run["steps"]


GATED = str(ROOT / "examples" / "gated-cleanup.yaml")


def test_the_gated_cleanup_deletes_only_after_a_yes(tutti: Tutti, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("a.tmp", "b.tmp", "keep.txt"):
        (work / name).write_text("x")
    code, run = run_json(tutti, "run", GATED, "--workspace", str(work))
    assert (code, waiting(run)) == (EXIT_WAITING, ["confirm"])
    assert (
        run["steps"]["confirm"]["detail"]["approval"]["question"] == "Delete 2 .tmp files under .?"
    )
    assert sorted(p.name for p in work.iterdir()) == ["a.tmp", "b.tmp", "keep.txt"]

    code, run = run_json(tutti, "approve", run["run_id"], "confirm", "--yes")
    assert (code, run["status"]) == (EXIT_OK, "succeeded")
    assert run["outputs"]["delete"] == "deleted by cli"
    assert run["steps"]["keep"]["status"] == "skipped"
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"]


def test_the_gated_cleanup_keeps_the_files_after_a_no(tutti: Tutti, tmp_path: Path) -> None:
    (tmp_path / "a.tmp").write_text("x")
    code, run = run_json(tutti, "run", GATED, "--workspace", str(tmp_path))
    code, run = run_json(tutti, "approve", run["run_id"], "confirm", "--no", "--note", "not now")
    assert (code, run["status"]) == (EXIT_OK, "succeeded")
    assert run["steps"]["delete"]["status"] == "skipped"
    assert run["outputs"]["keep"].startswith("Nothing deleted (gate 'confirm' rejected")
    assert (tmp_path / "a.tmp").exists()


def test_a_fan_out_prints_one_line_for_its_step_not_one_per_instance(
    tutti: Tutti, tmp_path: Path
) -> None:
    spec = tmp_path / "fan.yaml"
    spec.write_text(
        "steps:\n"
        "  - {id: each, foreach: '${range(50) | list}', args: 'n${item}'}\n"
        "  - {id: bad, foreach: [1, 2], args: '${item / 0}', on_failure: continue}\n"
    )
    code, out, err = tutti("run", str(spec))
    assert code == EXIT_OK  # the failed instances are collected (continue): the run goes on
    lines = (out + err).splitlines()
    assert [ln for ln in lines if "each[" in ln] == []
    assert any(ln.split() == ["succeeded", "each", "(50", "steps", "added)"] for ln in lines)
    assert any("54 steps, 52 of them added at run time (" in ln for ln in lines)
    # an instance that fails is still shown, with its error
    assert (
        sum(1 for ln in lines if ln.split()[:2] in (["failed", "bad[0]"], ["failed", "bad[1]"]))
        == 2
    )
