"""What each `tutti` command imports before it does its work (issue 12: a command line and a
server that start at once). The tests look at which modules a fresh process has loaded,
never at wall time: `--help` loads the parser alone, `plan` no MCP SDK, and `serve` answers
`initialize` without the Anthropic SDK even with an API key set. bench/startup.py measures
the times these pin."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
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
    tmp_path: Path, argv: list[str], *, request: str | None = None, **extra: str
) -> tuple[set[str], str]:
    """The modules `tutti ARGV` had loaded when it exited, and its stdout. With `request`,
    that line is written on its stdin and stdin is closed (which ends `serve`) only once a
    line has come back."""
    code = REPORT + (
        "from tutti_mcp.server.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as exc:\n    code = exc.code\n"
        "sys.exit(code)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(tmp_path, **extra),
        cwd=tmp_path,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        first = b""
        try:
            if request is not None:
                proc.stdin.write(request.encode() + b"\n")
                proc.stdin.flush()
                first = first_line(proc.stdout.fileno(), time.monotonic() + START_S)
            stdout, stderr = proc.communicate(timeout=START_S)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr.decode()
    line = next(ln for ln in stderr.decode().splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES "))), (first + stdout).decode()


def first_line(fd: int, deadline: float) -> bytes:
    """Bytes from `fd` up to and including the first newline, waiting until `deadline`."""
    got = b""
    while not got.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no line within {START_S}s; got {got!r}")
        byte = os.read(fd, 1)  # one at a time: what follows the line stays for communicate()
        if not byte:
            raise AssertionError(f"stdout closed before a line; got {got!r}")
        got += byte
    return got


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
        request=json.dumps(INIT),
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
