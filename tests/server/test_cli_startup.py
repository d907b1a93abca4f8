"""What each `tutti` command imports before it does its work (issue 12: a command line and a
server that start at once). The tests look at which modules a fresh process has loaded,
never at wall time: `--help` loads the parser alone, `plan` no MCP SDK, and `serve` answers
`initialize` without the Anthropic SDK even with an API key set. bench/startup.py measures
the times these pin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tutti_mcp.memory.files.paths import GLOBAL
from tutti_mcp.memory.files.paths import ROOT as MEMORY_ROOT
from tutti_mcp.memory.runs.records import RunStatus
from tutti_mcp.server import cli_parser

ROOT = Path(__file__).resolve().parents[2]
START_S = 60  # a fresh interpreter on a loaded machine, bounded
# Heavy packages and where they are used: the engine (pydantic models, networkx, jinja2),
# the MCP SDK, the Anthropic SDK, rich's console and tables, the database.
HEAVY = (
    *("anthropic", "mcp", "mcp_types", "networkx", "jinja2", "pydantic", "rich", "yaml"),
    *("aiosqlite", "anyio", "httpx2", "tutti_mcp.engine", "tutti_mcp.memory"),
)
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
# Prints, to stderr when the process ends, the top-level names of the modules it loaded.
REPORT = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('MODULES ' + json.dumps(sorted(sys.modules)), "
    "file=sys.stderr, flush=True))\n"
)


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TUTTI_"))}
    return {**clean, "PYTHONPATH": str(ROOT), "TUTTI_DB": str(tmp_path / "t.db"), **extra}


def modules_after(
    tmp_path: Path, argv: list[str], *, stdin: str = "", **extra: str
) -> tuple[set[str], str]:
    """The modules `tutti ARGV` had loaded when it exited, and its stdout."""
    code = REPORT + (
        "from tutti_mcp.server.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as exc:\n    code = exc.code\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        env=env(tmp_path, **extra),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES "))), proc.stdout


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(p for p in packages if any(m == p or m.startswith(p + ".") for m in modules))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"]])
def test_help_and_version_load_the_parser_and_nothing_heavy(
    tmp_path: Path, argv: list[str]
) -> None:
    modules, out = modules_after(tmp_path, argv)
    assert out.startswith(("usage: tutti", "tutti "))
    assert loaded(modules, HEAVY) == []
    assert sorted(m for m in modules if m.startswith("tutti_mcp.")) == [
        "tutti_mcp.server",
        "tutti_mcp.server.cli",
        "tutti_mcp.server.cli_parser",
        "tutti_mcp.server.exit_codes",
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["plan", str(ROOT / "examples" / "seed-chain.json")], "critical path: analyze_codebase"),
        (["run", "tiny.yaml"], "tiny"),
        (["runs"], "run"),
    ],
)
def test_plan_and_the_run_commands_load_neither_the_mcp_sdk_nor_the_anthropic_sdk(
    tmp_path: Path, argv: list[str], says: str
) -> None:
    (tmp_path / "tiny.yaml").write_text("name: tiny\nsteps:\n  - {id: a, args: hello}\n")
    modules, out = modules_after(tmp_path, argv)
    assert says in out
    assert loaded(modules, ("mcp", "mcp_types", "anthropic", "tutti_mcp.tools.workflow")) == []


def test_memory_commands_load_neither_the_workflow_engine_nor_an_sdk(tmp_path: Path) -> None:
    modules, out = modules_after(tmp_path, ["memory", "view", "/memories"])
    assert "/memories" in out
    packages = (
        "mcp",
        "anthropic",
        "networkx",
        "tutti_mcp.engine.service",
        "tutti_mcp.tools.workflow",
    )
    assert loaded(modules, packages) == []


def test_serve_answers_initialize_without_loading_the_anthropic_sdk(tmp_path: Path) -> None:
    """With an API key the server can run prompt steps; the SDK they need is loaded when the
    first one runs, not before the client has its answer."""
    modules, out = modules_after(
        tmp_path,
        ["serve"],
        stdin=json.dumps(INIT) + "\n",  # then end of input: the server exits
        ANTHROPIC_API_KEY="test",
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",
    )
    answer = json.loads(out.splitlines()[0])
    assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "tutti"
    assert loaded(modules, ("anthropic",)) == []


def test_the_parser_spells_run_statuses_and_memory_paths_as_their_modules_do() -> None:
    """cli_parser imports nothing of tutti's, so it spells these values itself."""
    assert tuple(s.value for s in RunStatus) == cli_parser.RUN_STATUSES
    assert (cli_parser.MEMORY_ROOT, cli_parser.MEMORY_GLOBAL) == (MEMORY_ROOT, GLOBAL)
