"""The agents' toolbox, tool by tool: `read`, `grep` and `glob` stay inside the workspace
(no `..`, no absolute paths, no symlink out), refuse binary files and cap what they read
and return; `bash` runs an argv under the shell policy, narrowed by `bash:PROGRAM` grants,
in the workspace, with a timeout that kills it. And the `tools:` field's forms."""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.errors import SpecError
from tutti_mcp.engine.executors.shell_policy import ShellPolicy
from tutti_mcp.engine.spec import ExecutorKind, Step, parse_spec
from tutti_mcp.engine.toolbox.base import OUTPUT_CAP, ToolUseError
from tutti_mcp.engine.toolbox.bash import BashTool, ShellAccess
from tutti_mcp.engine.toolbox.files import GLOB_MAX, GlobTool, GrepTool, ReadTool
from tutti_mcp.engine.toolbox.grep_scan import GREP_FILE_MAX, GREP_MATCHES_MAX
from tutti_mcp.engine.toolbox.spec import ToolGrant, ToolName, client_lines, toolset

pytestmark = pytest.mark.anyio


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with a few files, a .git folder, a binary file and a secret beside it."""
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("import os\n\ndef main():\n    return os.getcwd()\n")
    (root / "src" / "util.py").write_text("def helper():\n    return 'TODO'\n")
    (root / "README.md").write_text("# demo\nTODO: write docs\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("TODO in git internals\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0TODO")
    (tmp_path / "secret.txt").write_text("TODO password=hunter2\n")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outside").symlink_to(tmp_path)
    return root


async def run(tool: Any, args: dict[str, Any]) -> str:
    with anyio.fail_after(10):
        result: str = await tool.run(args)
        return result


async def refused(tool: Any, args: dict[str, Any]) -> str:
    with pytest.raises(ToolUseError) as info, anyio.fail_after(10):
        await tool.run(args)
    return str(info.value)


# -- read ------------------------------------------------------------------------------------
async def test_read_returns_numbered_lines_from_offset_up_to_limit(ws: Path) -> None:
    tool = ReadTool(ws)

    assert await run(tool, {"path": "src/app.py"}) == (
        "     1\timport os\n     2\t\n     3\tdef main():\n     4\t    return os.getcwd()"
    )
    assert await run(tool, {"path": "src/app.py", "offset": 3, "limit": 1}) == (
        "     3\tdef main():"
    )


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("../secret.txt", "must be a relative path inside the workspace"),
        ("/etc/passwd", "must be a relative path inside the workspace"),
        ("leak.txt", "leads outside the workspace"),
        ("outside/secret.txt", "leads outside the workspace"),
        ("logo.png", "is a binary file"),
        ("src", "is not a file"),
    ],
)
async def test_read_refuses_paths_outside_the_workspace_and_binary_files(
    ws: Path, path: str, says: str
) -> None:
    assert says in await refused(ReadTool(ws), {"path": path})


async def test_read_caps_its_output_and_says_where_to_go_on(ws: Path) -> None:
    (ws / "big.txt").write_text("".join(f"line {i} " + "x" * 90 + "\n" for i in range(5000)))

    text = await run(ReadTool(ws), {"path": "big.txt"})

    assert len(text.encode()) <= OUTPUT_CAP + 100
    last = text.splitlines()[-1]
    assert last.startswith(f"[cut at {OUTPUT_CAP} bytes: continue with offset=")
    n = int(last.rsplit("=", 1)[1].rstrip("]"))
    assert (await run(ReadTool(ws), {"path": "big.txt", "offset": n, "limit": 1})).startswith(
        f"{n:6}\tline {n - 1} "
    )


async def test_read_of_one_enormous_line_returns_a_capped_part_of_it(ws: Path) -> None:
    (ws / "one.txt").write_bytes(b"y" * (3 * OUTPUT_CAP) + b"\nsecond\n")

    text = await run(ReadTool(ws), {"path": "one.txt"})

    assert len(text.encode()) <= OUTPUT_CAP + 100
    assert text.endswith("[cut at 65536 bytes: continue with offset=1]")
    assert await run(ReadTool(ws), {"path": "one.txt", "offset": 2}) == "     2\tsecond"


async def test_read_holds_at_most_a_capped_part_of_a_huge_line_in_memory(ws: Path) -> None:
    (ws / "huge.txt").write_bytes(b"z" * (24 << 20))
    tracemalloc.start()
    try:
        text = await run(ReadTool(ws), {"path": "huge.txt"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert text.endswith("[cut at 65536 bytes: continue with offset=1]")
    assert peak < 4 << 20


async def test_a_tools_input_is_checked_and_the_error_names_the_field(ws: Path) -> None:
    says = await refused(ReadTool(ws), {"path": "a.txt", "offset": 0, "mode": "x"})

    assert says.startswith("invalid input for `read` (offset: Input should be greater")
    assert "mode: Extra inputs are not permitted" in says


# -- grep ------------------------------------------------------------------------------------
async def test_grep_prints_path_line_text_and_skips_git_binary_and_links_out(ws: Path) -> None:
    assert await run(GrepTool(ws), {"pattern": "TODO"}) == (
        "README.md:2:TODO: write docs\nsrc/util.py:2:    return 'TODO'"
    )


async def test_grep_narrows_by_path_glob_and_ignores_case_on_request(ws: Path) -> None:
    tool = GrepTool(ws)

    assert await run(tool, {"pattern": "todo", "ignore_case": True, "glob": "*.md"}) == (
        "README.md:2:TODO: write docs"
    )
    assert await run(tool, {"pattern": r"def \w+", "path": "src"}) == (
        "src/app.py:3:def main():\nsrc/util.py:1:def helper():"
    )
    assert await run(tool, {"pattern": "nothing like this"}) == "no matches"


async def test_grep_refuses_a_bad_regex_and_paths_outside(ws: Path) -> None:
    assert "is not a valid regex" in await refused(GrepTool(ws), {"pattern": "("})
    assert "relative path inside the workspace" in await refused(
        GrepTool(ws), {"pattern": "x", "path": ".."}
    )
    assert "leads outside" in await refused(GrepTool(ws), {"pattern": "x", "path": "outside"})


async def test_grep_stops_at_its_match_cap_and_skips_oversized_files(ws: Path) -> None:
    (ws / "many.txt").write_text("hit\n" * (GREP_MATCHES_MAX + 50))
    (ws / "huge.txt").write_bytes(b"hit\n" * (GREP_FILE_MAX // 4 + 1))

    text = await run(GrepTool(ws), {"pattern": "^hit$"})

    lines = text.splitlines()
    assert lines[-2:] == [
        "[skipped huge.txt: over 1 MiB]",
        f"[stopped at {GREP_MATCHES_MAX} matches: narrow the search]",
    ]
    assert len([x for x in lines if x.startswith("many.txt:")]) == GREP_MATCHES_MAX


async def test_a_backtracking_pattern_is_stopped_at_the_timeout_and_the_loop_stays_free(
    ws: Path,
) -> None:
    (ws / "trap.txt").write_text("a" * 60 + "b\n")
    lags: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(0.01)
            now = time.perf_counter()
            lags.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        says = await refused(GrepTool(ws, timeout_s=1.0), {"pattern": "(a+)+$"})
        tg.cancel_scope.cancel()

    assert says.startswith("grep did not finish within 1s and was stopped: a pattern that ")
    assert max(lags) < 0.5  # re holds the GIL: in a thread of this process it would be ~1 s


# -- glob ------------------------------------------------------------------------------------
async def test_glob_lists_matching_files_sorted_without_git_or_links_out(ws: Path) -> None:
    assert await run(GlobTool(ws), {"pattern": "**/*"}) == (
        "README.md\nlogo.png\nsrc/app.py\nsrc/util.py"
    )
    assert await run(GlobTool(ws), {"pattern": "src/*.py"}) == "src/app.py\nsrc/util.py"
    assert await run(GlobTool(ws), {"pattern": "*.rs"}) == "no files match '*.rs'"


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "src/../../*"])
async def test_glob_refuses_patterns_that_leave_the_workspace(ws: Path, pattern: str) -> None:
    assert "must be a relative path inside the workspace" in await refused(
        GlobTool(ws), {"pattern": pattern}
    )


async def test_glob_caps_how_many_files_it_lists(ws: Path) -> None:
    (ws / "gen").mkdir()
    for i in range(GLOB_MAX + 20):
        (ws / "gen" / f"f{i:04d}.txt").write_text("")

    lines = (await run(GlobTool(ws), {"pattern": "gen/*.txt"})).splitlines()

    assert len(lines) == GLOB_MAX + 1
    assert lines[-1] == f"[more than {GLOB_MAX} files: narrow the pattern]"


# -- bash ------------------------------------------------------------------------------------
def bash(ws: Path, tools: list[str], access: ShellAccess) -> BashTool:
    return BashTool(ws, toolset(tools), access, {"TUTTI_RUN_ID": "r1"})


ALLOW_ECHO = ShellAccess(ShellPolicy({"echo", "pwd", "printenv"}))


async def test_bash_runs_an_allowed_program_in_the_workspace_with_tuttis_env_only(
    ws: Path,
) -> None:
    tool = bash(ws, ["bash"], ALLOW_ECHO)

    assert await run(tool, {"argv": ["echo", "a  b", "$HOME"]}) == (
        "exit code 0\n--- stdout ---\na  b $HOME\n"
    )
    assert await run(tool, {"argv": ["pwd"]}) == f"exit code 0\n--- stdout ---\n{ws.resolve()}\n"
    assert await run(tool, {"argv": ["printenv", "TUTTI_RUN_ID"]}) == (
        "exit code 0\n--- stdout ---\nr1\n"
    )
    says = await refused(tool, {"argv": ["echo"], "env": {"LD_PRELOAD": "x"}})
    assert "env: Extra inputs are not permitted" in says


async def test_bash_refuses_a_program_outside_the_allow_list_and_says_what_is_allowed(
    ws: Path,
) -> None:
    says = await refused(bash(ws, ["bash"], ALLOW_ECHO), {"argv": ["rm", "-rf", "src"]})

    assert says.startswith("program 'rm' is not allowed (TUTTI_ALLOW_SHELL allows: echo, ")
    assert says.endswith("You may run: echo, printenv, pwd")
    assert (ws / "src" / "app.py").exists()


async def test_a_bash_program_grant_allows_only_argv_starting_with_it(ws: Path) -> None:
    tool = bash(ws, ["/bash echo hello"], ALLOW_ECHO)

    assert await run(tool, {"argv": ["echo", "hello", "world"]}) == (
        "exit code 0\n--- stdout ---\nhello world\n"
    )
    for argv in (["echo", "bye"], ["pwd"], ["echo"]):
        says = await refused(tool, {"argv": argv})
        assert says == (
            f"{argv[0]!r} is not allowed here; you may run: argv starting with 'echo hello'"
        )


async def test_a_program_grant_does_not_widen_the_servers_allow_list(ws: Path) -> None:
    says = await refused(bash(ws, ["bash:ls"], ALLOW_ECHO), {"argv": ["ls"]})

    assert says.startswith("program 'ls' is not allowed (TUTTI_ALLOW_SHELL allows:")
    assert ALLOW_ECHO.problem(toolset(["bash:ls"])) == (
        "grants bash:ls, which TUTTI_ALLOW_SHELL does not allow (it allows: echo, printenv, "
        "pwd); add it there, or remove the grant"
    )


async def test_with_shell_off_the_bash_tool_runs_nothing(ws: Path) -> None:
    off = ShellAccess(None)

    says = await refused(bash(ws, ["bash"], off), {"argv": ["echo", "x"]})

    assert (
        says
        == "'echo' is not allowed here; you may run: nothing (shell programs are off on this server)"
    )
    assert "shell programs are off here: set TUTTI_ALLOW_SHELL" in (
        off.problem(toolset(["bash"])) or ""
    )


async def test_under_the_cli_only_programs_the_file_names_may_run(ws: Path) -> None:
    cli = ShellAccess(ShellPolicy(None), named_only=True)

    assert await run(bash(ws, ["bash", "bash:echo"], cli), {"argv": ["echo", "ok"]}) == (
        "exit code 0\n--- stdout ---\nok\n"
    )
    says = await refused(bash(ws, ["bash", "bash:echo"], cli), {"argv": ["pwd"]})
    assert says == "'pwd' is not allowed here; you may run: argv starting with 'echo'"
    assert "write bash:PROGRAM" in (cli.problem(toolset(["bash"])) or "")
    assert cli.problem(toolset(["bash:echo"])) is None


async def test_bash_refuses_a_relative_program_path(ws: Path) -> None:
    script = ws / "run.sh"
    script.write_text("#!/bin/sh\necho pwned\n")
    script.chmod(0o755)
    anything = ShellAccess(ShellPolicy(None))

    says = await refused(bash(ws, ["bash"], anything), {"argv": ["./run.sh"]})

    assert says == "program './run.sh': name the program (pytest), not a relative path"


async def test_a_failing_program_is_an_error_result_with_its_output(ws: Path) -> None:
    tool = bash(ws, ["bash"], ShellAccess(ShellPolicy(None)))
    code = "import sys; print('out'); print('bad', file=sys.stderr); sys.exit(3)"

    says = await refused(tool, {"argv": [sys.executable, "-c", code]})

    assert says == "exit code 3\n--- stdout ---\nout\n\n--- stderr ---\nbad\n"


async def test_bash_output_is_capped_and_the_program_still_finishes(ws: Path) -> None:
    tool = bash(ws, ["bash"], ShellAccess(ShellPolicy(None), max_output=1000))
    code = "import sys; sys.stdout.write('z' * 500_000)"

    text = await run(tool, {"argv": [sys.executable, "-c", code]})

    assert text == "exit code 0\n--- stdout ---\n" + "z" * 1000 + "\n[stdout cut at 1000 bytes]"


async def test_a_program_past_its_timeout_is_killed_with_its_children(ws: Path) -> None:
    tool = bash(ws, ["bash"], ShellAccess(ShellPolicy(None), timeout_s=0.5))
    pidfile = ws / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(c.pid))\n"
        "time.sleep(60)\n"
    )

    says = await refused(tool, {"argv": [sys.executable, "-c", code]})

    assert says.startswith(f"{sys.executable} did not finish within 0.5s and was killed")
    child = int(pidfile.read_text())
    with anyio.fail_after(5):
        while _alive(child):
            await anyio.sleep(0.01)  # polling a process's exit, bounded by fail_after


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (killed, not yet reaped) is gone
        return f.read().split(") ", 1)[1][0] != "Z"


# -- the `tools:` field ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "grant"),
    [
        ("read", ToolGrant(ToolName.READ)),
        ("grep", ToolGrant(ToolName.GREP)),
        ("glob", ToolGrant(ToolName.GLOB)),
        ("bash", ToolGrant(ToolName.BASH)),
        ("memory", ToolGrant(ToolName.MEMORY)),
        ("bash:pytest", ToolGrant(ToolName.BASH, "pytest")),
        ("bash:npm audit", ToolGrant(ToolName.BASH, "npm", ("audit",))),
        ("/grep", ToolGrant(ToolName.GREP)),
        ("/glob", ToolGrant(ToolName.GLOB)),
        ("/read", ToolGrant(ToolName.READ)),
        ("/bash", ToolGrant(ToolName.BASH)),
        ("/bash security-scan", ToolGrant(ToolName.BASH, "security-scan")),
        ("/bash profiler", ToolGrant(ToolName.BASH, "profiler")),
        ("/bash npm audit --json", ToolGrant(ToolName.BASH, "npm", ("audit", "--json"))),
        ("bash:/usr/bin/pytest", ToolGrant(ToolName.BASH, "/usr/bin/pytest")),
    ],
)
def test_each_tools_form_parses_to_its_grant(entry: str, grant: ToolGrant) -> None:
    step = Step(id="s", prompt="p", tools=[entry])

    assert toolset(step.tools).grants == (grant,)


def test_the_seeds_swarm_agents_tools_validate() -> None:
    spec = parse_spec(
        {
            "type": "swarm",
            "agents": {
                "coordinator": {"role": "plan"},
                "security": {"role": "scan", "tools": ["/grep", "/bash security-scan"]},
                "performance": {"role": "tune", "tools": ["/bash profiler", "/glob"]},
            },
        }
    )

    swarm = spec.steps[0].swarm
    assert swarm is not None
    assert swarm.agents["performance"].tools == ["/bash profiler", "/glob"]


@pytest.mark.parametrize(
    ("step", "where", "says"),
    [
        (
            {"prompt": "p", "tools": ["grep", "search"]},
            "steps[0] (a).tools",
            "unknown tool 'search' in `tools`; known forms: read, grep, glob, bash, memory, "
            "bash:PROGRAM (e.g. bash:pytest), and the seed's /read, /grep, /glob, /bash, "
            "/bash PROGRAM [ARGS] (e.g. /bash npm audit)",
        ),
        (
            {"prompt": "p", "tools": ["bash:./run.sh"]},
            "steps[0] (a).tools",
            "`tools` entry 'bash:./run.sh' names program './run.sh' by relative path; name "
            "the program (pytest) or give its absolute path (/usr/bin/pytest)",
        ),
        (
            {"prompt": "p", "tools": ["bash:${inputs.cmd}"]},
            "steps[0] (a).tools",
            "`tools` entry 'bash:${inputs.cmd}': a program and its arguments are fixed text "
            "here (no templates, no NUL bytes)",
        ),
        (
            {"argv": ["ls"], "tools": ["grep"]},
            "steps[0] (a)",
            "step 'a' runs on shell, which has no model to give tools to: `tools` is for "
            "model steps (prompt, client, sampling)",
        ),
        (
            {"prompt": "p", "tools": ["memory"], "memory": False},
            "steps[0] (a)",
            "`tools` names memory but `memory` is false; drop one of them (`memory: <scope>` "
            "chooses where the memory files live)",
        ),
    ],
)
def test_wrong_tools_are_spec_errors_that_name_the_entry(
    step: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"steps": [{"id": "a", **step}]})

    assert [(p.path, p.message) for p in info.value.problems] == [(where, says)]


def test_an_agents_unknown_tool_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"type": "swarm", "agents": {"a": {"role": "x", "tools": ["/curl"]}}})

    assert "unknown tool '/curl' in `tools`" in str(info.value)


def test_the_memory_tool_alone_means_workflow_memory() -> None:
    assert Step(id="s", prompt="p", tools=["memory"]).memory == "workflow"
    assert Step(id="s", prompt="p", tools=["memory"], memory="global").memory == "global"
    assert Step(id="s", prompt="p", tools=["grep"]).memory is None


def test_a_client_steps_handoff_names_what_each_tool_grants() -> None:
    grants = toolset(["/grep", "read", "/bash security-scan", "bash:npm audit"])

    assert client_lines(grants) == (
        "Tools: this step grants grep, read, bash:security-scan, bash:npm audit. With your own "
        "tools, you may grep/read the workspace (read only: change no files); you may run "
        "only: security-scan, npm audit (with further arguments after them). Use no other "
        "tool for this step."
    )
    assert client_lines(toolset([])) == ""


def test_step_executor_kinds_that_take_tools() -> None:
    for run in ("prompt", "client", "sampling"):
        assert Step(id="s", prompt="p", run=run, tools=["grep"]).executor is ExecutorKind(run)
