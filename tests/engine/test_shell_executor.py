"""Shell steps: argv without a shell, templated values as single arguments, env, cwd
confinement, output cap, exit codes, timeouts that kill the process group, and the
allow-list (TUTTI_ALLOW_SHELL)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError, StepError
from tutti_mcp.engine.executors.base import StepCall
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.shell import ShellExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, Step
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

# A program that prints the arguments it received, as JSON: proof of argument boundaries.
PRINT_ARGV = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]

HOSTILE_VALUES = [
    "x; touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a && touch PWNED || touch PWNED",
    "two  spaced words",
    "it's \"quoted\" 'twice'",
    "$HOME ${PATH} *",
    "line one\nline two > PWNED",
]


def make_call(
    step: dict[str, Any], workspace: Path, inputs: dict[str, Any] | None = None
) -> StepCall:
    return StepCall(
        run_id="run_1",
        step=Step.model_validate({"id": "s", **step}),
        attempt=1,
        context={"inputs": inputs or {}},
        deps=(),
        timeout_s=10,
        workspace=workspace,
    )


async def run_shell(
    step: dict[str, Any],
    workspace: Path,
    inputs: dict[str, Any] | None = None,
    executor: ShellExecutor | None = None,
) -> str:
    with anyio.fail_after(10):
        outcome = await (executor or ShellExecutor()).execute(make_call(step, workspace, inputs))
    assert isinstance(outcome.output, str)
    return outcome.output


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteRunStore]:
    async with await SqliteRunStore.open(tmp_path / "runs.db") as s:
        yield s


def shell_engine(
    store: SqliteRunStore, workspace: Path, shell: ShellExecutor | None = None
) -> Engine:
    executors: dict[ExecutorKind, Any] = {ExecutorKind.BUILTIN: BuiltinExecutor()}
    executors[ExecutorKind.SHELL] = shell or ShellExecutor()
    return Engine(store, executors, EngineConfig(workspace=workspace))


async def run_workflow(engine: Engine, steps: list[dict[str, Any]], **inputs: Any) -> RunRecord:
    spec: dict[str, Any] = {"name": "shell-test", "steps": steps}
    if inputs:
        spec["inputs"] = {k: {"default": v} for k, v in inputs.items()}
    with anyio.fail_after(20):
        return await engine.run(spec)


# -- argv ----------------------------------------------------------------------------------


async def test_bash_command_args_are_split_into_argv_with_shell_quoting_rules(
    workspace: Path,
) -> None:
    step = {"command": "/bash", "args": "printf '%s|' one 'two words' \"three\" four\\ five"}
    assert Step.model_validate({"id": "s", **step}).shell_argv == [
        "printf",
        "%s|",
        "one",
        "two words",
        "three",
        "four five",
    ]
    assert await run_shell(step, workspace) == "one|two words|three|four five|"


async def test_bash_args_may_use_templates_with_spaces_inside_the_braces(workspace: Path) -> None:
    # `${inputs.v | upper}` is one template; splitting the args must not cut it in pieces
    step = {"command": "/bash", "args": "echo ${inputs.v | upper}"}
    assert await run_shell(step, workspace, {"v": "abc"}) == "ABC"


@pytest.mark.parametrize("value", HOSTILE_VALUES)
async def test_a_templated_argv_value_reaches_the_program_as_one_argument_uninterpreted(
    workspace: Path, value: str
) -> None:
    out = await run_shell({"argv": [*PRINT_ARGV, "${inputs.v}", "after"]}, workspace, {"v": value})
    assert json.loads(out) == [value, "after"]
    assert list(workspace.iterdir()) == []  # nothing ran a `touch`


@pytest.mark.parametrize("value", HOSTILE_VALUES)
async def test_a_templated_value_in_bash_args_is_one_argument_uninterpreted(
    workspace: Path, value: str
) -> None:
    out = await run_shell(
        {"command": "/bash", "args": "printf %s ${inputs.v}"}, workspace, {"v": value}
    )
    assert out == value.rstrip("\n")
    assert list(workspace.iterdir()) == []


async def test_env_values_are_rendered_and_passed_with_the_step_identity(workspace: Path) -> None:
    step = {
        "argv": [
            "sh",
            "-c",
            'printf "%s|%s|%s|%s" "$GREETING" "$TUTTI_RUN_ID" "$TUTTI_STEP_ID" "$TUTTI_IDEMPOTENCY_KEY"',
        ],
        "env": {"GREETING": "hello ${inputs.who}"},
    }
    out = await run_shell(step, workspace, {"who": "world; touch PWNED"})
    assert out == "hello world; touch PWNED|run_1|s|run_1:s"
    assert list(workspace.iterdir()) == []


# -- cwd -----------------------------------------------------------------------------------


async def test_cwd_is_the_workspace_or_a_directory_inside_it(workspace: Path) -> None:
    (workspace / "sub").mkdir()
    assert await run_shell({"argv": ["pwd", "-P"]}, workspace) == str(workspace.resolve())
    assert await run_shell({"argv": ["pwd", "-P"], "cwd": "sub"}, workspace) == str(
        (workspace / "sub").resolve()
    )


@pytest.mark.parametrize("cwd", ["..", "../ws/../..", "/", "escape"])
async def test_a_cwd_outside_the_workspace_is_refused(workspace: Path, cwd: str) -> None:
    (workspace / "escape").symlink_to(workspace.parent)  # a symlink out of the workspace
    with pytest.raises(StepError, match="outside the workspace") as info:
        await run_shell({"argv": ["pwd"], "cwd": cwd}, workspace)
    assert (info.value.kind, info.value.retryable) == ("policy", False)


async def test_a_cwd_that_is_not_a_directory_is_refused(workspace: Path) -> None:
    with pytest.raises(StepError, match="not a directory"):
        await run_shell({"argv": ["pwd"], "cwd": "missing"}, workspace)


# -- output, exit codes, missing programs --------------------------------------------------


async def test_output_over_the_cap_fails_the_step_once_with_a_clear_error(
    store: SqliteRunStore, workspace: Path
) -> None:
    engine = shell_engine(store, workspace, ShellExecutor(max_output=100))
    run = await run_workflow(
        engine,
        [
            {
                "id": "loud",
                "argv": ["sh", "-c", "head -c 1000 /dev/zero"],
                "retry": {"attempts": 3, "backoff_s": 0},
            }
        ],
    )
    step = run.steps["loud"]
    assert (run.status, step.status) == (RunStatus.FAILED, StepStatus.FAILED)
    assert step.error is not None
    assert "stdout exceeded the cap of 100 bytes" in step.error
    assert "TUTTI_SHELL_MAX_OUTPUT" in step.error
    assert step.attempts == 1  # the cap is not a transient failure: no retries


async def test_output_under_the_cap_is_returned_without_the_trailing_newline(
    workspace: Path,
) -> None:
    out = await run_shell(
        {"argv": ["sh", "-c", "head -c 50 /dev/zero | tr '\\0' x; echo"]},
        workspace,
        executor=ShellExecutor(max_output=100),
    )
    assert out == "x" * 50


async def test_a_non_zero_exit_fails_with_the_code_and_the_tail_of_stderr(workspace: Path) -> None:
    script = "i=0; while [ $i -lt 500 ]; do echo noise $i >&2; i=$((i+1)); done; echo the real cause >&2; exit 3"
    with pytest.raises(StepError) as info:
        await run_shell({"argv": ["sh", "-c", script]}, workspace)
    message = str(info.value)
    assert message.startswith("sh exited with code 3: ")
    assert message.endswith("the real cause")
    assert "noise 0\n" not in message  # only the tail of a long stderr
    assert info.value.kind == "exit_code"


async def test_a_missing_program_is_named_in_the_error(workspace: Path) -> None:
    with pytest.raises(StepError, match="program 'no-such-program-xyz' not found on PATH"):
        await run_shell({"argv": ["no-such-program-xyz"]}, workspace)


# -- timeouts ------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a killed child not yet reaped by init is a zombie: it no longer runs
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_a_timeout_kills_the_whole_process_group(
    store: SqliteRunStore, workspace: Path
) -> None:
    engine = shell_engine(store, workspace)
    run = await run_workflow(
        engine,
        [
            {
                "id": "slow",
                "argv": ["sh", "-c", "sleep 30 & echo $! > child.pid; wait"],
                "timeout": 0.5,
            }
        ],
    )
    step = run.steps["slow"]
    assert (run.status, step.status) == (RunStatus.FAILED, StepStatus.FAILED)
    assert step.error == "timed out after 0.5s (attempt 1)"

    child = int((workspace / "child.pid").read_text())
    with anyio.fail_after(5):
        while not _gone(child):
            await anyio.sleep(0.05)


# -- allow-list ----------------------------------------------------------------------------


async def test_a_program_outside_the_allow_list_is_refused_naming_the_setting(
    workspace: Path,
) -> None:
    shell = ShellExecutor(allow={"echo"})
    assert await run_shell({"argv": ["echo", "hi"]}, workspace, executor=shell) == "hi"
    with pytest.raises(StepError, match="program 'ls' is not allowed") as info:
        await run_shell({"argv": ["ls"]}, workspace, executor=shell)
    assert "TUTTI_ALLOW_SHELL" in str(info.value)
    assert info.value.kind == "policy"


async def test_a_templated_program_is_checked_against_the_allow_list_after_rendering(
    workspace: Path,
) -> None:
    shell = ShellExecutor(allow={"echo"})
    with pytest.raises(StepError, match="TUTTI_ALLOW_SHELL"):
        await run_shell(
            {"argv": ["${inputs.prog}", "x"]}, workspace, {"prog": "touch"}, executor=shell
        )
    assert list(workspace.iterdir()) == []


async def test_preflight_refuses_a_disallowed_program_before_the_run_is_created(
    store: SqliteRunStore, workspace: Path
) -> None:
    engine = shell_engine(store, workspace, ShellExecutor(allow={"echo"}))
    with pytest.raises(
        ConfigurationError, match="step 'listing': program 'ls' is not allowed"
    ) as info:
        await engine.create_run(
            {"steps": [{"id": "greet", "argv": ["echo", "hi"]}, {"id": "listing", "argv": ["ls"]}]}
        )
    assert "TUTTI_ALLOW_SHELL" in str(info.value)
    assert await store.list_runs() == []


async def test_preflight_refuses_shell_steps_when_no_shell_executor_is_configured(
    store: SqliteRunStore, workspace: Path
) -> None:
    engine = Engine(
        store, {ExecutorKind.BUILTIN: BuiltinExecutor()}, EngineConfig(workspace=workspace)
    )
    spec = {
        "steps": [
            {"id": "count", "command": "/bash", "args": "wc -l README.md"},
            {"id": "lines", "argv": ["wc", "-l", "README.md"]},
            {"id": "fine", "args": "builtin steps need nothing"},
        ]
    }
    with pytest.raises(ConfigurationError, match="shell command") as info:
        await engine.create_run(spec)
    message = str(info.value)
    assert "count" in message and "lines" in message and "fine" not in message
    assert "TUTTI_ALLOW_SHELL" in message
    assert await store.list_runs() == []


async def test_the_program_runs_by_the_absolute_path_the_servers_path_gives(
    workspace: Path,
) -> None:
    # resolved before the step's env applies (tests/hostile/test_shell_env.py has the attacks)
    out = await run_shell(
        {"argv": ["sh", "-c", 'printf %s "$0"'], "env": {"PATH": "/nowhere"}}, workspace
    )
    assert out == shutil.which("sh")
