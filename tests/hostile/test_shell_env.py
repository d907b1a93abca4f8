"""Hostile specs against the shell allow-list (issue 9, item 1): a step's `env` must not
change which program runs or what it loads, a relative path is not the allowed program, a
templated program or cwd is checked once rendered, and the MCP server refuses such a spec
before anything runs.

The attack programs are real executables that leave a marker file when they run: a test
passes only if the marker is absent (or, where the honest program must run, its output is
the honest one)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.server.mcp_support import call, connect, fail, settings
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError, StepError
from tutti_mcp.engine.executors.base import StepCall
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.shell import ShellExecutor
from tutti_mcp.engine.executors.shell_policy import ShellPolicy
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, Step
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

ALLOW = frozenset({"wc", "echo"})  # TUTTI_ALLOW_SHELL=wc,echo


def plant(directory: Path, name: str, marker: Path) -> Path:
    """An executable script `directory/name` that writes `marker` and prints 'PWNED'."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(f"#!/bin/sh\necho ran > '{marker}'\necho PWNED\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


@pytest.fixture
def evil_bin(tmp_path: Path, marker: Path) -> Path:
    """A directory holding a `wc` that is not the server's `wc`."""
    plant(tmp_path / "evil", "wc", marker)
    return tmp_path / "evil"


async def execute(
    shell: ShellExecutor, step: dict[str, Any], workspace: Path, **inputs: Any
) -> str:
    call_ = StepCall(
        run_id="run_1",
        step=Step.model_validate({"id": "s", **step}),
        attempt=1,
        context={"inputs": inputs},
        deps=(),
        timeout_s=10,
        workspace=workspace,
    )
    with anyio.fail_after(10):
        outcome = await shell.execute(call_)
    assert isinstance(outcome.output, str)
    return outcome.output


async def refused(
    shell: ShellExecutor, step: dict[str, Any], workspace: Path, **inputs: Any
) -> str:
    """Run a step that the policy must refuse; the error text."""
    with pytest.raises(StepError) as info:
        await execute(shell, step, workspace, **inputs)
    assert (info.value.kind, info.value.retryable) == ("policy", False), info.value
    return str(info.value)


# -- the attack --------------------------------------------------------------------


async def test_a_path_in_the_steps_env_cannot_run_another_wc_under_the_allow_list(
    workspace: Path, evil_bin: Path, marker: Path
) -> None:
    step = {"argv": ["wc", "-c", "/dev/null"], "env": {"PATH": str(evil_bin)}}
    shell = ShellExecutor(ALLOW)
    message = await refused(shell, step, workspace)
    assert not marker.exists()
    assert "env.PATH" in message
    assert "changes which program runs or what it loads" in message
    assert "remove it from the step's env" in message
    assert shell.check_step(Step.model_validate({"id": "s", **step})) == message  # preflight


async def test_without_an_allow_list_a_path_in_env_still_does_not_choose_the_program(
    workspace: Path, evil_bin: Path, marker: Path
) -> None:
    """`tutti run` (everything allowed) keeps the step's PATH for the program's own use,
    but the program itself was resolved with tutti's PATH before the env applied."""
    step = {
        "argv": ["wc", "-c", "/dev/null"],
        "env": {"PATH": f"{evil_bin}{os.pathsep}{os.environ['PATH']}"},
    }
    out = await execute(ShellExecutor(), step, workspace)
    assert out.split() == ["0", "/dev/null"]
    assert not marker.exists()


async def test_the_engine_refuses_the_attack_before_the_run_is_created(
    tmp_path: Path, workspace: Path, evil_bin: Path, marker: Path
) -> None:
    async with await SqliteRunStore.open(tmp_path / "runs.db") as store:
        engine = Engine(
            store,
            {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.SHELL: ShellExecutor(ALLOW)},
            EngineConfig(workspace=workspace),
        )
        spec = {
            "steps": [
                {"id": "fine", "argv": ["echo", "hi"]},
                {
                    "id": "count",
                    "argv": ["wc", "-c", "/dev/null"],
                    "env": {"PATH": str(evil_bin), "LD_PRELOAD": "/tmp/x.so", "LANG": "C"},
                },
            ]
        }
        with anyio.fail_after(10), pytest.raises(ConfigurationError) as info:
            await engine.create_run(spec)
        assert await store.list_runs() == []
    message = str(info.value)
    assert "step 'count': env.PATH, env.LD_PRELOAD: a step may not set these" in message
    assert "LANG" not in message and "'fine'" not in message
    assert not marker.exists()


# -- what the env may not set --------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "DYLD_INSERT_LIBRARIES",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "BASH_ENV",
        "ENV",
        "IFS",
        "SHELLOPTS",
        "PS4",
        "BASH_FUNC_wc%%",
        "GCONV_PATH",
        "PERL5OPT",
        "NODE_OPTIONS",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_COUNT",
        "GIT_EXEC_PATH",
        "LESSOPEN",
        "PAGER",
        "TUTTI_RUN_ID",
    ],
)
async def test_env_names_that_change_what_runs_are_refused_and_named(
    workspace: Path, marker: Path, name: str
) -> None:
    message = await refused(
        ShellExecutor(ALLOW), {"argv": ["echo", "hi"], "env": {name: "x"}}, workspace
    )
    assert f"env.{name}:" in message


async def test_env_names_are_matched_case_sensitively_like_the_os(workspace: Path) -> None:
    step = {"argv": ["echo", "hi"], "env": {"path": "/nowhere", "Ld_Preload": "x"}}
    assert await execute(ShellExecutor(ALLOW), step, workspace) == "hi"


async def test_python_on_the_allow_list_cannot_be_made_to_load_code_through_pythonpath(
    tmp_path: Path, workspace: Path, marker: Path
) -> None:
    """PYTHONPATH puts a sitecustomize.py ahead of everything: Python runs it at start."""
    planted = tmp_path / "site"
    planted.mkdir()
    (planted / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    shell = ShellExecutor({sys.executable})
    step = {"argv": [sys.executable, "-c", "print('honest')"], "env": {"PYTHONPATH": str(planted)}}
    assert "env.PYTHONPATH" in await refused(shell, step, workspace)
    assert not marker.exists()
    honest = {"argv": [sys.executable, "-c", "print('honest')"]}
    assert await execute(shell, honest, workspace) == "honest"
    assert not marker.exists()


@pytest.mark.parametrize("name", ["A=B", "A\0B", ""])
@pytest.mark.parametrize("allow", [ALLOW, None], ids=["allow-list", "everything"])
async def test_an_env_name_that_is_no_variable_name_is_refused_in_every_mode(
    workspace: Path, name: str, allow: frozenset[str] | None
) -> None:
    message = await refused(
        ShellExecutor(allow), {"argv": ["echo", "hi"], "env": {name: "x"}}, workspace
    )
    assert "not a variable name" in message


async def test_a_rendered_env_value_holding_a_nul_byte_is_refused(workspace: Path) -> None:
    step = {"argv": ["echo", "hi"], "env": {"GREETING": "${inputs.v}"}}
    message = await refused(ShellExecutor(ALLOW), step, workspace, v="a\0b")
    assert "env.GREETING" in message and "NUL" in message


# -- which program runs --------------------------------------------------------------------


@pytest.mark.parametrize("program", ["./wc", "bin/wc", "../ws/wc"])
async def test_a_relative_path_is_not_the_allowed_program(
    workspace: Path, marker: Path, program: str
) -> None:
    plant(workspace, "wc", marker)
    plant(workspace / "bin", "wc", marker)
    message = await refused(ShellExecutor(ALLOW), {"argv": [program, "/dev/null"]}, workspace)
    assert f"program {program!r} is not allowed" in message
    assert "not by a relative path" in message
    assert not marker.exists()


async def test_a_templated_program_is_checked_after_rendering(
    workspace: Path, evil_bin: Path, marker: Path
) -> None:
    shell = ShellExecutor(ALLOW)
    step = {"argv": ["${inputs.prog}", "-c", "/dev/null"]}
    assert shell.check_step(Step.model_validate({"id": "s", **step})) is None  # not yet known
    for prog in (str(evil_bin / "wc"), "./wc"):
        assert "is not allowed" in await refused(
            shell, {**step, "cwd": "."}, evil_bin.parent, prog=prog
        )
    assert not marker.exists()
    assert (await execute(shell, step, workspace, prog="wc")).split() == ["0", "/dev/null"]


async def test_relative_entries_of_the_servers_path_are_not_searched(
    workspace: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.` (or an empty entry) in the server's PATH would look in the step's cwd, a
    directory specs can write to."""
    plant(workspace, "wc", marker)
    monkeypatch.setenv("PATH", os.pathsep.join([".", "", os.environ["PATH"]]))
    out = await execute(ShellExecutor(ALLOW), {"argv": ["wc", "-c", "/dev/null"]}, workspace)
    assert out.split() == ["0", "/dev/null"]
    assert not marker.exists()


async def test_an_allowed_name_found_nowhere_on_the_servers_path_is_a_clear_error(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    shell = ShellExecutor({"wc"})
    step = {"argv": ["wc", "-c", "/dev/null"]}
    why = shell.check_step(Step.model_validate({"id": "s", **step}))
    assert why is not None and "program 'wc' not found on the server's PATH" in why
    assert "absolute path in TUTTI_ALLOW_SHELL" in why
    with pytest.raises(StepError, match="not found on the server's PATH"):
        await execute(shell, step, workspace)


async def test_an_allow_list_entry_given_as_absolute_path_runs_exactly_that_file(
    tmp_path: Path, workspace: Path, marker: Path
) -> None:
    script = plant(tmp_path / "tools", "report", marker)
    shell = ShellExecutor({str(script)})
    assert await execute(shell, {"argv": [str(script)]}, workspace) == "PWNED"
    assert marker.exists()  # the allowed file ran: the path was honoured, not looked up
    assert "is not allowed" in await refused(shell, {"argv": ["report"]}, workspace)


def test_an_allow_list_entry_given_as_relative_path_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="TUTTI_ALLOW_SHELL names bin/wc by relative"):
        ShellPolicy({"wc", "bin/wc"})


# -- cwd -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cwd", ["escape", "inside/../escape", "inside/../..", "/tmp"])
async def test_a_templated_cwd_is_confined_after_rendering_and_symlinks_followed(
    workspace: Path, marker: Path, cwd: str
) -> None:
    (workspace / "escape").symlink_to(workspace.parent)
    (workspace / "inside").mkdir()
    step = {"argv": ["echo", "hi"], "cwd": "${inputs.dir}"}
    assert "outside the workspace" in await refused(ShellExecutor(ALLOW), step, workspace, dir=cwd)


async def test_a_symlink_inside_the_workspace_to_a_directory_inside_it_is_a_valid_cwd(
    workspace: Path,
) -> None:
    (workspace / "real").mkdir()
    (workspace / "alias").symlink_to(workspace / "real")
    step = {"argv": ["pwd", "-P"], "cwd": "${inputs.dir}"}
    out = await execute(ShellExecutor({"pwd"}), step, workspace, dir="alias")
    assert out == str((workspace / "real").resolve())


# -- through the MCP server ----------------------------------------------------------------


async def test_the_mcp_server_refuses_the_attack_at_workflow_start_and_plan(
    tmp_path: Path, workspace: Path, evil_bin: Path, marker: Path
) -> None:
    spec = {
        "name": "walkaround",
        "steps": [
            {"id": "count", "argv": ["wc", "-c", "/dev/null"], "env": {"PATH": str(evil_bin)}}
        ],
    }
    with anyio.fail_after(20):
        async with connect("auto", settings(allow_shell=ALLOW), workspace=workspace) as c:
            text = await fail(c, "workflow_start", spec=spec, wait_s=5)
            plan = await call(c, "workflow_plan", spec=spec)
            runs = await call(c, "workflow_list")
    assert "step 'count': env.PATH" in text
    assert "changes which program runs or what it loads" in text
    assert "env.PATH" in plan["next"] and "cannot run here yet" in plan["next"]
    assert runs["runs"] == []
    assert not marker.exists()
