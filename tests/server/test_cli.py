"""The `tutti` command line, driven in-process through `server.cli.main` (each test has
its own database in tmp_path; the user's database is never touched)."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tutti_mcp.server.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main, parser
from tutti_mcp.server.hints import command_prefix

ROOT = Path(__file__).resolve().parents[2]
REPO_STATS = ROOT / "examples" / "repo-stats.yaml"

Tutti = Callable[..., tuple[int, str, str]]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def tutti(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Tutti:
    """Run `tutti --db DB ARGS...`; returns (exit code, stdout, stderr)."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "TUTTI_ALLOW_SHELL", "TUTTI_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TUTTI_DB", str(tmp_path / "not-this-one.db"))  # --db must win

    def call(*args: str) -> tuple[int, str, str]:
        code = main(["--db", str(db), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_json(tutti: Tutti, *args: str) -> tuple[int, Any]:  # an object or a list
    code, out, _ = tutti(*args, "--json")
    return code, json.loads(out)


FAILING = """
name: breaks
steps:
  - id: fetch
    argv: ["sh", "-c", "echo fetched"]
  - id: broken
    argv: ["sh", "-c", "echo the disk is full >&2; exit 4"]
    depends_on: [fetch]
  - id: after
    args: "${broken.output} and more"
"""

TYPED = """
name: typed
inputs:
  count: {type: integer, required: true}
  ratio: {type: number, default: 0.5}
  loud: {type: boolean, default: false}
  tags: {type: json, default: []}
  who: {type: string, default: "nobody"}
steps:
  - id: echo
    value:
      next: "${inputs.count + 1}"
      half: "${inputs.ratio * 2}"
      loud: "${inputs.loud}"
      tags: "${inputs.tags}"
      who: "${inputs.who}"
"""


# -- run -----------------------------------------------------------------------------------


def test_run_json_prints_one_object_with_the_run_its_steps_outputs_and_metrics(
    tutti: Tutti,
) -> None:
    code, result = run_json(tutti, "run", str(REPO_STATS))

    assert code == EXIT_OK
    assert result["status"] == "succeeded"
    assert result["run_id"].startswith("run_")
    steps = ["python_files", "python_lines", "commits", "largest", "summary", "report"]
    assert list(result["steps"]) == steps
    assert {s["status"] for s in result["steps"].values()} <= {"succeeded", "degraded"}
    assert set(result["outputs"]) == set(steps)
    assert result["outputs"]["report"].startswith("Repository report\n")
    assert result["outputs"]["summary"]["files"] > 0
    metrics = result["metrics"]
    assert metrics["steps"] == len(steps)
    assert metrics["critical_path"][-1] == "report"
    assert result["recovery"] is None


def hint(db: Path) -> str:
    """How the hints of `tutti --db DB ...` spell a command (see server.hints)."""
    return f"{command_prefix()} --db {shlex.quote(str(db))}"


def test_run_prints_a_summary_on_one_screen_with_where_the_run_is_stored(
    tutti: Tutti, db: Path
) -> None:
    code, out, err = tutti("run", str(REPO_STATS))
    assert code == EXIT_OK
    run_id = err.split()[1]
    assert err.startswith(f"run {run_id} (repo-stats)")
    lines = out.splitlines()
    assert len(lines) + len(err.splitlines()) <= 40, out
    # one line per step, its output cut to the width (80 when not a terminal)
    assert all(len(line) <= 80 for line in lines if line.startswith("  ")), out
    assert lines[0].startswith(f"repo-stats {run_id}: succeeded, 6 steps (6 succeeded) in ")
    for step in ("python_files", "python_lines", "commits", "largest", "summary", "report"):
        assert sum(line.split()[:2] == [step, "succeeded"] for line in lines) == 1, step
    assert "\nreport:\nRepository report\n" in out  # the final output, cut to a few lines
    assert f"stored in {db}" in lines
    assert f"see it again: {hint(db)} show {run_id}" in out
    assert "critical path:" not in out  # that and the full outputs: --full, or show


def test_run_full_prints_the_table_the_metrics_and_the_final_output_in_full(
    tutti: Tutti,
) -> None:
    code, out, _ = tutti("run", str(REPO_STATS), "--full")
    assert code == EXIT_OK
    assert "critical path:" in out and "speedup" in out
    report = out.split("\nreport:\n", 1)[1]
    assert report.startswith("Repository report\n") and "largest files:" in report


def test_show_prints_the_final_output_in_full_and_with_full_every_output(
    tutti: Tutti,
) -> None:
    _, result = run_json(tutti, "run", str(REPO_STATS))
    _, out, _ = tutti("show", result["run_id"])
    assert "\nreport:\n" + result["outputs"]["report"] in out
    assert "\ncommits:\n" not in out
    _, out, _ = tutti("show", result["run_id"], "--full")
    assert "\ncommits:\n" + result["outputs"]["commits"] in out


def test_a_summary_of_many_steps_lists_those_that_did_not_succeed_first(
    tutti: Tutti, tmp_path: Path
) -> None:
    steps = [f"  - id: s{i:02}\n    args: fine\n" for i in range(30)]
    # after the others, so that none is cancelled by its failure, however the machine is loaded
    after = ", ".join(f"s{i:02}" for i in range(30))
    steps.append(f'  - id: bad\n    argv: ["sh", "-c", "exit 3"]\n    depends_on: [{after}]\n')
    code, out, _ = tutti("run", str(write(tmp_path, "many.yaml", "steps:\n" + "".join(steps))))
    assert code == EXIT_FAILED
    lines = out.splitlines()
    assert len(lines) <= 20, out
    assert any(line.split()[:2] == ["bad", "failed"] for line in lines)
    assert "  ... 30 more steps succeeded" in lines


def test_a_failing_workflow_exits_non_zero_with_partial_results_and_a_recovery_plan(
    tutti: Tutti, tmp_path: Path, db: Path
) -> None:
    code, result = run_json(tutti, "run", str(write(tmp_path, "breaks.yaml", FAILING)))

    assert code == EXIT_FAILED
    assert result["status"] == "failed"
    assert result["outputs"] == {"fetch": "fetched"}
    assert result["steps"]["broken"]["status"] == "failed"
    recovery = result["recovery"]
    failure = recovery["failures"]["broken"]
    assert "exited with code 4" in failure["error"] and "the disk is full" in failure["error"]
    assert failure["kind"] == "exit_code"
    assert failure["hint"]
    assert recovery["resume"]["keeps_committed"] == ["fetch"]
    assert recovery["resume"]["reruns"] == ["broken"]
    assert recovery["resume"]["then_runs"] == ["after"]
    assert recovery["command"] == f"{hint(db)} resume {result['run_id']}"


def test_an_invalid_spec_exits_2_and_names_each_problem(tutti: Tutti, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        "steps:\n  - id: a\n    args: hi\n    timout: 3\n  - id: b\n    depends_on: [nosuch]\n",
    )
    code, out, err = tutti("run", str(bad), "--json")
    assert code == EXIT_USAGE
    assert out == ""
    assert "timout" in err and "unknown field" in err


def test_an_unknown_dependency_exits_2_and_names_it(tutti: Tutti, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        "steps:\n  - id: a\n    args: hi\n  - id: b\n    depends_on: [nosuch]\n",
    )
    code, _, err = tutti("run", str(bad), "--json")
    assert code == EXIT_USAGE
    assert "nosuch" in err


def test_a_missing_spec_file_exits_2(tutti: Tutti, tmp_path: Path) -> None:
    code, _, err = tutti("run", str(tmp_path / "nowhere.yaml"))
    assert code == EXIT_USAGE
    assert "cannot read the spec file" in err


# -- inputs --------------------------------------------------------------------------------


def test_inputs_from_the_command_line_are_converted_to_their_declared_types(
    tutti: Tutti, tmp_path: Path
) -> None:
    spec = write(tmp_path, "typed.yaml", TYPED)
    code, result = run_json(
        tutti,
        "run",
        str(spec),
        "-i",
        "count=41",
        "--input",
        "ratio=1.25",
        "--input",
        "loud=yes",
        "--input",
        'tags=["a", "b"]',
        "--input",
        "who=a=b c",
    )
    assert code == EXIT_OK
    assert result["inputs"] == {
        "count": 41,
        "ratio": 1.25,
        "loud": True,
        "tags": ["a", "b"],
        "who": "a=b c",
    }
    assert result["outputs"]["echo"] == {
        "next": 42,
        "half": 2.5,
        "loud": True,
        "tags": ["a", "b"],
        "who": "a=b c",
    }


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--input", "count=1", "--input", "colour=red"], "unknown input"),
        (["--input", "count=many"], "expected integer"),
        (["--input", "count=1", "--input", "loud=perhaps"], "expected boolean"),
        ([], "required input is missing"),
        (["--input", "count"], "--input takes NAME=VALUE"),
    ],
)
def test_bad_inputs_exit_2_and_say_what_is_wrong(
    tutti: Tutti, tmp_path: Path, flags: list[str], message: str
) -> None:
    code, out, err = tutti("run", str(write(tmp_path, "typed.yaml", TYPED)), *flags, "--json")
    assert code == EXIT_USAGE
    assert message in " ".join(err.split())
    assert out == ""


# -- plan ----------------------------------------------------------------------------------


def test_plan_json_shows_the_parallel_groups_and_the_mermaid_graph(tutti: Tutti) -> None:
    code, plan = run_json(tutti, "plan", str(REPO_STATS))
    assert code == EXIT_OK
    assert plan["name"] == "repo-stats"
    assert [set(g) for g in plan["groups"]] == [
        {"python_files", "python_lines", "commits", "largest"},
        {"summary"},
        {"report"},
    ]
    assert plan["steps"]["summary"]["executor"] == "builtin"
    assert plan["steps"]["commits"]["executor"] == "shell"
    assert plan["mermaid"].startswith(("graph", "flowchart"))


def test_plan_does_not_create_a_run(tutti: Tutti) -> None:
    assert tutti("plan", str(REPO_STATS))[0] == EXIT_OK
    code, runs = run_json(tutti, "runs")
    assert (code, runs) == (EXIT_OK, [])


# -- runs, show ----------------------------------------------------------------------------


def test_runs_json_lists_runs_newest_first_and_filters_by_status(
    tutti: Tutti, tmp_path: Path
) -> None:
    _, ok = run_json(tutti, "run", str(REPO_STATS))
    _, bad = run_json(tutti, "run", str(write(tmp_path, "breaks.yaml", FAILING)))

    code, runs = run_json(tutti, "runs")
    assert code == EXIT_OK
    assert [(r["run_id"], r["name"], r["status"]) for r in runs] == [
        (bad["run_id"], "breaks", "failed"),
        (ok["run_id"], "repo-stats", "succeeded"),
    ]
    _, failed = run_json(tutti, "runs", "--status", "failed")
    assert [r["run_id"] for r in failed] == [bad["run_id"]]


def test_runs_piped_prints_one_line_per_run_with_its_error_whole(
    tutti: Tutti, tmp_path: Path
) -> None:
    name = "a-workflow-whose-name-alone-takes-most-of-an-eighty-column-line"
    spec = FAILING.replace("name: breaks", f"name: {name}")
    _, bad = run_json(tutti, "run", str(write(tmp_path, "breaks.yaml", spec)))
    code, out, _ = tutti("runs")
    assert code == EXIT_OK
    lines = [line for line in out.splitlines() if bad["run_id"] in line]
    assert len(lines) == 1
    # every cell whole on the run's line, not folded to 80 columns over several lines
    assert all(cell in lines[0] for cell in (name, "failed", bad["error"]))


def test_show_json_returns_the_same_object_as_run(tutti: Tutti) -> None:
    _, result = run_json(tutti, "run", str(REPO_STATS))
    code, shown = run_json(tutti, "show", result["run_id"])
    assert code == EXIT_OK
    assert shown == result


def test_show_prints_the_steps_and_a_mermaid_gantt_chart(tutti: Tutti) -> None:
    _, result = run_json(tutti, "run", str(REPO_STATS))
    code, out, _ = tutti("show", result["run_id"])
    assert code == EXIT_OK
    assert "```mermaid\ngantt\n" in out
    gantt = out.split("```mermaid\n", 1)[1].split("```", 1)[0]
    for step in result["steps"]:
        assert re.search(rf"^\s+{step} :", gantt, re.M), step


def test_show_of_an_unknown_run_exits_2_and_points_to_runs_as_it_is_typed_here(
    tutti: Tutti, db: Path
) -> None:
    code, _, err = tutti("show", "run_nope")
    assert code == EXIT_USAGE
    assert "no run with id 'run_nope'" in err and f"`{hint(db)} runs`" in " ".join(err.split())


def test_resume_of_a_succeeded_run_is_refused(tutti: Tutti) -> None:
    _, result = run_json(tutti, "run", str(REPO_STATS))
    code, _, err = tutti("resume", result["run_id"], "--json")
    assert code == EXIT_USAGE
    assert result["run_id"] in err and "succeeded" in err


# -- prune ---------------------------------------------------------------------------------


def test_prune_deletes_finished_runs_older_than_the_cutoff(tutti: Tutti) -> None:
    _, result = run_json(tutti, "run", str(REPO_STATS))

    code, _, err = tutti("prune")  # default: older than 30 days; this run is new
    assert code == EXIT_OK
    assert "pruned 0 finished runs" in err
    assert [r["run_id"] for r in run_json(tutti, "runs")[1]] == [result["run_id"]]

    code, _, err = tutti("prune", "--older-than-days", "0")
    assert code == EXIT_OK
    assert "pruned 1 finished runs" in err
    assert run_json(tutti, "runs")[1] == []
    assert tutti("show", result["run_id"])[0] == EXIT_USAGE


# -- documentation -------------------------------------------------------------------------


def _subcommands() -> list[str]:
    for action in parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    raise AssertionError("the parser has no subcommands")


def _parsers(
    p: argparse.ArgumentParser,
) -> list[argparse.ArgumentParser]:
    """`p` and every parser below it (`tutti memory view` included)."""
    found = [p]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_every_option_and_argument_says_what_it_does_and_its_default() -> None:
    """The rule: every option and positional argument has a help text; one that takes a
    value (an option with an argument, or an optional positional) says its default in it
    ("default: ..." or argparse's %(default)s) or that it is required. Flags (store_true)
    are off unless given, which needs no saying. Left out: argparse's own -h and --version,
    and the hidden per-subcommand copy of --db (the top-level --db documents it)."""
    problems = []
    for p in _parsers(parser()):
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if isinstance(a, argparse._SubParsersAction) or a.help == argparse.SUPPRESS:
                continue
            name = f"{p.prog} {'/'.join(a.option_strings) or a.dest}"
            if not a.help:
                problems.append(f"{name}: no help")
                continue
            takes_value = a.nargs != 0 and (a.option_strings or a.nargs in ("?", "*"))
            required = a.required or any(
                a in g._group_actions and g.required for g in p._mutually_exclusive_groups
            )
            says = "default" in a.help or "required" in a.help or required
            if takes_value and not says:
                problems.append(f"{name}: help does not say its default: {a.help!r}")
    assert problems == []


def test_every_subcommand_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = _subcommands()
    assert commands  # run, plan, resume, ...
    undocumented = [c for c in commands if not re.search(rf"\btutti {c}\b", readme)]
    assert undocumented == [], (
        f"README.md does not mention: {', '.join(f'tutti {c}' for c in undocumented)}"
    )


def test_resume_runs_shell_steps_where_the_run_started_not_in_the_current_directory(
    tutti: Tutti, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # fails the first time (leaving a flag in its working directory), then prints where it ran
    flow = write(
        project,
        "flaky.yaml",
        'steps:\n  - id: where\n    argv: ["sh", "-c", "test -f flag || { touch flag; exit 1; }; pwd"]\n',
    )
    code, first = run_json(tutti, "run", str(flow))
    assert (code, first["status"]) == (EXIT_FAILED, "failed")

    monkeypatch.chdir(elsewhere)
    code, resumed = run_json(tutti, "resume", first["run_id"])

    assert (code, resumed["status"], resumed["outputs"]) == (
        EXIT_OK,
        "succeeded",
        {"where": str(project.resolve())},
    )
    assert not (elsewhere / "flag").exists()


def test_the_seed_chain_runs_by_hand_with_client_steps_and_complete(tutti: Tutti) -> None:
    seed = str(ROOT / "examples" / "seed-chain.json")
    code, run = run_json(tutti, "run", seed, "--client")
    assert (code, run["status"], run["steps"]["analyze_codebase"]["status"]) == (
        3,
        "waiting",
        "waiting",
    )
    run_id = run["run_id"]
    code, run = run_json(
        tutti, "complete", run_id, "analyze_codebase", "--output", "eval() in app.py", "--resume"
    )
    # the upstream result is rendered into the next step's instructions
    assert run["steps"]["fix_issues"]["detail"]["instructions"] == (
        "fix security issues: eval() in app.py"
    )
    for step, answer in [
        ("fix_issues", "replaced eval with ast.literal_eval"),
        ("validate_fixes", "PASS"),
    ]:
        code, run = run_json(tutti, "complete", run_id, step, "--output", answer, "--resume")
    assert (code, run["status"], run["outputs"]) == (
        EXIT_OK,
        "succeeded",
        {
            "analyze_codebase": "eval() in app.py",
            "fix_issues": "replaced eval with ast.literal_eval",
            "validate_fixes": "PASS",
        },
    )
