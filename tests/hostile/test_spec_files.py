"""Hostile spec files and spec text: over the MCP tools (in-process client, a workspace in
tmp_path) and over the `tutti` CLI (real subprocesses). Every bad spec is a clean error that
names the file and the problem: a tool error over MCP, exit 2 on the CLI, never a traceback;
spec paths given to the MCP tools stay inside the workspace; no error quotes a spec's text."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.server.mcp_support import MODES, ROOT, call, connect, fail, settings
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.spec_source import DEFAULT_MAX_SPEC_DEPTH
from tutti_mcp.server.cli import EXIT_USAGE, main
from tutti_mcp.server.settings import Settings

pytestmark = pytest.mark.anyio

SECRET = "sk-ant-secret-0123456789abcdef"
# a valid line with a secret, then a YAML error: the parser's own message quotes the lines
LEAKY = f"api_key: {SECRET}\nname: leaky\nsteps: [\n  - : :\n"
GOOD_YAML = "name: good\nsteps:\n  - id: a\n    op: template\n    args: hello\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret spec file beside the workspace, not in it."""
    secret = tmp_path / "outside" / "secret.yaml"
    secret.parent.mkdir()
    secret.write_text(LEAKY, encoding="utf-8")
    return secret


def nested_json(depth: int) -> str:
    """A spec whose step value is nested so that the deepest list is at `depth`."""
    inner = "[" * (depth - 3) + "]" * (depth - 3)
    return '{"steps": [{"id": "a", "op": "pass", "value": ' + inner + "}]}"


def nested_yaml(depth: int) -> str:
    inner = "[" * (depth - 3) + "]" * (depth - 3)
    return f"steps:\n  - id: a\n    op: pass\n    value: {inner}\n"


def nested_object(depth: int) -> dict[str, Any]:
    value: list[Any] = []
    for _ in range(depth - 4):
        value = [value]
    return {"steps": [{"id": "a", "op": "pass", "value": value}]}


BOMB = "\n".join(
    [
        'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]',
        *(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "steps: [{id: s, op: pass, value: *i}]",
    ]
)


# -- confinement -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_a_secret_file_outside_the_workspace_is_refused_by_every_path_and_never_quoted(
    mode: str, workspace: Path, outside: Path
) -> None:
    (workspace / "link.yaml").symlink_to(outside)
    (workspace / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    paths = [
        str(outside),  # absolute
        "../outside/secret.yaml",  # relative, with ..
        "./../outside/./secret.yaml",
        "link.yaml",  # a symlink in the workspace to the file outside
        "linked-dir/secret.yaml",  # through a symlinked directory
        str(workspace / ".." / "outside" / "secret.yaml"),  # absolute, through the workspace
    ]
    with anyio.fail_after(20):
        async with connect(mode, workspace=workspace) as c:
            plans = [await fail(c, "workflow_plan", spec=p) for p in paths]
            starts = [await fail(c, "workflow_start", spec=p) for p in paths]
    for path, error in zip(paths * 2, plans + starts, strict=True):
        assert "outside the workspace" in error, (path, error)
        assert f"TUTTI_WORKSPACE={workspace.resolve()}" in error
        assert "pass the spec itself as an object, or move the file into the workspace" in error
        assert SECRET not in error and "api_key" not in error and "sk-ant" not in error


async def test_a_path_outside_says_the_same_whether_or_not_the_file_exists(
    workspace: Path, outside: Path
) -> None:
    missing = outside.parent / "missing.yaml"
    with anyio.fail_after(10):
        async with connect("auto", workspace=workspace) as c:
            there = await fail(c, "workflow_plan", spec=str(outside))
            not_there = await fail(c, "workflow_plan", spec=str(missing))
    assert there.replace(str(outside), "P") == not_there.replace(str(missing), "P")


async def test_a_spec_file_inside_the_workspace_is_read_by_relative_or_absolute_path(
    workspace: Path,
) -> None:
    (workspace / "sub").mkdir()
    (workspace / "sub" / "good.yaml").write_text(GOOD_YAML, encoding="utf-8")
    (workspace / "alias.yaml").symlink_to(workspace / "sub" / "good.yaml")
    with anyio.fail_after(10):
        async with connect("auto", workspace=workspace) as c:
            names = [
                (await call(c, "workflow_plan", spec=p))["name"]
                for p in (
                    "sub/good.yaml",
                    str(workspace / "sub" / "good.yaml"),
                    "sub/../sub/good.yaml",
                    "alias.yaml",  # a symlink that stays inside
                )
            ]
    assert names == ["good"] * 4


async def test_path_looking_strings_are_never_parsed_as_spec_text(workspace: Path) -> None:
    (workspace / "notes.txt").write_text(LEAKY, encoding="utf-8")
    with anyio.fail_after(10):
        async with connect("auto", workspace=workspace) as c:
            missing = await fail(c, "workflow_plan", spec="missing.yaml")
            upper = await fail(c, "workflow_plan", spec="MISSING.YML")
            not_spec = await fail(c, "workflow_plan", spec="notes.txt")
            not_spec_dir = await fail(c, "workflow_plan", spec="sub/notes")
            passwd = await fail(c, "workflow_plan", spec="/etc/passwd")
    assert f"no spec file at 'missing.yaml' in the workspace {workspace.resolve()}" in missing
    assert "no spec file at 'MISSING.YML'" in upper
    assert "'notes.txt' is not a spec file: spec files end in .yaml, .yml or .json" in not_spec
    assert SECRET not in not_spec
    assert "'sub/notes' is not a spec file" in not_spec_dir
    assert "'/etc/passwd' is outside the workspace" in passwd


async def test_a_yaml_error_in_a_workspace_file_gives_line_and_column_without_its_text(
    workspace: Path,
) -> None:
    (workspace / "leaky.yaml").write_text(LEAKY, encoding="utf-8")
    with anyio.fail_after(10):
        async with connect("auto", workspace=workspace) as c:
            from_file = await fail(c, "workflow_plan", spec="leaky.yaml")
            from_text = await fail(c, "workflow_plan", spec=LEAKY)
    assert "- leaky.yaml: not valid YAML: line 4, column 3: " in from_file
    assert "- spec: not valid YAML: line 4, column 3: " in from_text
    for error in (from_file, from_text):
        assert SECRET not in error and "api_key" not in error and "- : :" not in error


# -- bad files over MCP ----------------------------------------------------------------------
def _write(text: str | bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)

    return make


UTF16_NO_BOM = GOOD_YAML.encode("utf-16-le")
BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "deep.json": (_write(nested_json(100_000)), "nested more than 64 levels deep"),
    "deep.yaml": (_write(nested_yaml(100_000)), "nested more than 64 levels deep"),
    "bigint.json": (
        _write('{"steps": [{"id": "a", "op": "pass", "value": ' + "9" * 5000 + "}]}"),
        "an integer of 5,000 digits (at most 4,300): write it as a string",
    ),
    "bigint.yaml": (
        _write("steps: [{id: a, op: pass, value: " + "9" * 5000 + "}]\n"),
        "line 1, column 34: an integer of more than 4,300 digits",
    ),
    "hexint.yaml": (
        _write("steps: [{id: a, op: pass, value: 0x" + "f" * 5000 + "}]\n"),
        "steps[0].value: an integer of more than 4,300 digits",
    ),
    "nan.json": (
        _write('{"steps": [{"id": "a", "op": "pass", "value": NaN}]}'),
        "NaN is not a JSON number",
    ),
    "inf.yaml": (_write("steps: [{id: a, op: pass, value: .inf}]\n"), "inf is not a JSON number"),
    "latin1.yaml": (
        _write("name: café\n".encode("latin-1") + GOOD_YAML.encode()),
        "is not UTF-8 text: byte 0xe9 at line 1, column 10",
    ),
    "utf16.yaml": (_write(UTF16_NO_BOM), "contains NUL bytes"),
    "binary.yaml": (_write(bytes(range(256)) * 4), "contains NUL bytes"),
    "nul.yaml": (_write(GOOD_YAML + "\x00\n"), "contains NUL bytes"),
    "bad-bom.yaml": (
        _write(codecs.BOM_UTF16_LE + b"\x00\xd8"),  # a lone surrogate
        "starts with a UTF-16-LE byte-order mark but is not valid UTF-16-LE",
    ),
    "empty.yaml": (_write(""), "is empty"),
    "blank.json": (_write(" \n\t\n"), "is empty"),
    "dir.yaml": (lambda p: p.mkdir(), "is a directory, not a spec file"),
    "fifo.yaml": (lambda p: os.mkfifo(p), "is a named pipe (FIFO), not a spec file"),
    "bomb.yaml": (_write(BOMB), "values once YAML aliases are expanded (TUTTI_MAX_SPEC_BYTES)"),
    "recursive.yaml": (
        _write("steps: &s [{id: a, op: pass, value: *s}]\n"),
        "nested more than 64 levels deep",
    ),
    "binary-tag.yaml": (
        _write("steps: [{id: a, op: pass, value: !!binary aGVsbG8=}]\n"),
        "the tag !!binary makes a value that is not JSON",
    ),
    "set-tag.yaml": (
        _write("steps: [{id: a, op: pass, value: !!set {a, b}}]\n"),
        "the tag !!set makes a value that is not JSON",
    ),
    "python-tag.yaml": (
        _write("steps: [{id: a, op: pass, value: !!python/object/apply:os.system [id]}]\n"),
        "could not determine a constructor for the tag",
    ),
    "int-key.yaml": (
        _write("steps: [{id: a, op: pass, value: {1: one}}]\n"),
        "steps[0].value: a key of type int; keys are strings",
    ),
    "list.yaml": (_write("- a\n- b\n"), "a workflow spec is a mapping, got list"),
    "two-docs.yaml": (_write(GOOD_YAML + "---\n" + GOOD_YAML), "expected a single document"),
}


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")
@pytest.mark.parametrize("name", sorted(BAD_FILES))
async def test_a_bad_spec_file_is_a_tool_error_naming_the_file_and_the_problem(
    name: str, workspace: Path
) -> None:
    make, problem = BAD_FILES[name]
    make(workspace / name)
    with anyio.fail_after(20):
        async with connect("auto", workspace=workspace) as c:
            error = await fail(c, "workflow_plan", spec=name)
    assert f"  - {name}: " in error or f"  - : {problem}" in error, error
    assert problem in error, error
    assert "Traceback" not in error


async def test_utf8_and_utf16_files_with_a_byte_order_mark_are_read(workspace: Path) -> None:
    text = GOOD_YAML.replace("hello", "héllo")
    (workspace / "utf8.yaml").write_bytes(codecs.BOM_UTF8 + text.encode())
    (workspace / "utf16.yaml").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    (workspace / "utf16be.yaml").write_bytes(codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    with anyio.fail_after(10):
        async with connect("auto", workspace=workspace) as c:
            plans = [
                await call(c, "workflow_plan", spec=n)
                for n in ("utf8.yaml", "utf16.yaml", "utf16be.yaml")
            ]
    assert [p["name"] for p in plans] == ["good"] * 3


async def test_dates_in_yaml_stay_strings() -> None:
    spec = 'inputs: {day: 2024-05-01}\nsteps: [{id: a, op: template, args: "${inputs.day}"}]\n'
    with anyio.fail_after(10):
        async with connect("auto") as c:
            started = await call(c, "workflow_start", spec=spec, wait_s=5)
            result = await call(c, "workflow_result", run_id=started["run_id"])
    assert result["outputs"] == {"a": "2024-05-01"}


# -- limits, for files, text and objects alike -----------------------------------------------
async def test_the_depth_limit_is_the_same_for_json_text_yaml_text_objects_and_files(
    workspace: Path,
) -> None:
    limit = DEFAULT_MAX_SPEC_DEPTH
    (workspace / "ok.json").write_text(nested_json(limit), encoding="utf-8")
    (workspace / "deep.json").write_text(nested_json(limit + 1), encoding="utf-8")
    with anyio.fail_after(20):
        async with connect("auto", workspace=workspace) as c:
            for spec_ok, spec_deep in (
                (nested_json(limit), nested_json(limit + 1)),
                (nested_yaml(limit), nested_yaml(limit + 1)),
                (nested_object(limit), nested_object(limit + 1)),
                ("ok.json", "deep.json"),
            ):
                await call(c, "workflow_plan", spec=spec_ok)
                error = await fail(c, "workflow_plan", spec=spec_deep)
                assert f"nested more than {limit} levels deep (TUTTI_MAX_SPEC_DEPTH)" in error
                assert "raise TUTTI_MAX_SPEC_DEPTH" in error


async def test_the_limits_follow_their_settings_for_files_text_and_objects(
    workspace: Path,
) -> None:
    small = settings(max_spec_bytes=200, max_spec_depth=8)
    big_yaml = GOOD_YAML + "description: " + "x" * 200 + "\n"
    (workspace / "big.yaml").write_text(big_yaml, encoding="utf-8")
    with anyio.fail_after(20):
        async with connect("auto", small, workspace=workspace) as c:
            big_file = await fail(c, "workflow_plan", spec="big.yaml")
            big_text = await fail(c, "workflow_plan", spec=big_yaml)
            deep_text = await fail(c, "workflow_plan", spec=nested_json(9))
            deep_object = await fail(c, "workflow_plan", spec=nested_object(9))
            await call(c, "workflow_plan", spec=nested_object(8))
    size = len(big_yaml.encode())
    assert f"- big.yaml: the spec is {size} bytes; at most 200 are allowed" in big_file
    assert f"- spec: the spec is {size - 1} bytes; at most 200 are allowed" in big_text  # stripped
    for error in (big_file, big_text):
        assert "(TUTTI_MAX_SPEC_BYTES): split the workflow, or raise TUTTI_MAX_SPEC_BYTES" in error
    for error in (deep_text, deep_object):
        assert "nested more than 8 levels deep (TUTTI_MAX_SPEC_DEPTH)" in error


async def test_deep_and_huge_values_in_spec_text_and_objects_are_tool_errors() -> None:
    huge = 10**5000
    with anyio.fail_after(20):
        async with connect("auto") as c:
            deep_json = await fail(c, "workflow_plan", spec=nested_json(50_000))
            deep_yaml = await fail(c, "workflow_plan", spec=nested_yaml(50_000))
            bomb = await fail(c, "workflow_plan", spec=BOMB)
            deep_inputs = await fail(
                c,
                "workflow_plan",
                spec={
                    "inputs": {"x": {"default": nested_object(100)}},
                    "steps": [{"id": "a", "args": "x"}],
                },
            )
            # the MCP layer parses big integers; printing one back would raise ValueError
            big_int = await fail(
                c,
                "workflow_start",
                spec={"steps": [{"id": "a", "op": "pass", "value": huge}]},
            )
    assert "- spec: line 1, column " in deep_json and "nested more than 64" in deep_json
    assert "- spec: line 4, column " in deep_yaml and "nested more than 64" in deep_yaml
    assert "values once YAML aliases are expanded" in bomb
    assert "- spec: inputs.x.default.steps[0].value" in deep_inputs
    assert "nested more than 64 levels deep" in deep_inputs
    assert "- spec: steps[0].value: an integer of more than 4,300 digits" in big_int


async def test_input_values_over_mcp_are_held_to_the_same_limits() -> None:
    spec = {
        "inputs": {"x": {"type": "json"}},
        "steps": [{"id": "a", "op": "pass", "value": "${inputs.x}"}],
    }
    with anyio.fail_after(20):
        async with connect("auto") as c:
            huge = await fail(c, "workflow_start", spec=spec, inputs={"x": 10**5000}, wait_s=0)
            deep = await fail(
                c, "workflow_start", spec=spec, inputs={"x": nested_object(100)}, wait_s=0
            )
            run = await call(c, "workflow_start", spec=spec, inputs={"x": [1]}, wait_s=5)
            fork = await fail(
                c, "workflow_resume", run_id=run["run_id"], inputs={"x": 10**5000}, wait_s=0
            )
    assert "- inputs: x: an integer of more than 4,300 digits" in huge
    assert "- inputs: x.steps[0].value" in deep and "nested more than 64 levels deep" in deep
    assert "- inputs: x: an integer of more than 4,300 digits" in fork


def test_the_limit_settings_are_read_from_the_environment_and_must_be_positive() -> None:
    env = {"TUTTI_MAX_SPEC_BYTES": "4096", "TUTTI_MAX_SPEC_DEPTH": "12"}
    limits = Settings.from_env(env).spec_limits
    assert (limits.max_bytes, limits.max_depth) == (4096, 12)
    for name, raw, why in (
        ("TUTTI_MAX_SPEC_BYTES", "0", "must be a positive integer, got 0"),
        ("TUTTI_MAX_SPEC_DEPTH", "deep", "must be an integer, got 'deep'"),
    ):
        with pytest.raises(ConfigurationError, match=f"{name} {why}"):
            Settings.from_env({name: raw})


# -- the CLI ---------------------------------------------------------------------------------
def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TUTTI_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")
def test_the_cli_as_a_subprocess_exits_2_naming_the_file_without_a_traceback(
    tmp_path: Path,
) -> None:
    """`tutti run` of a FIFO used to wait forever for a writer; `tutti plan` of a deep file
    ended in a RecursionError traceback, exit 1. Two real processes, run side by side."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text(nested_json(100_000), encoding="utf-8")
    cases = [
        ("run", fifo, "is a named pipe (FIFO), not a spec file"),
        ("plan", deep, "line 1, column 108: nested more than 64 levels deep"),
    ]
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-m", "tutti_mcp", "--db", str(tmp_path / "db"), cmd, str(f)],
                    cwd=ROOT,
                    env=_cli_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for cmd, f, _ in cases
        ]
        for p in procs:
            stack.callback(p.kill)  # runs before each Popen's own exit: nothing outlives this
        answers = [p.communicate(timeout=60) for p in procs]
    for (_, path, problem), p, (_, err) in zip(cases, procs, answers, strict=True):
        assert p.returncode == 2, err
        assert "Traceback" not in err
        assert (
            err
            == f"error: workflow spec is invalid (1 problem):\n  - {path}: {problem}"
            + (err.split(problem, 1)[1])
        )


@pytest.fixture
def tutti(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    """`tutti ARGS...` in-process: (exit code, stderr)."""
    for name in ("TUTTI_MAX_SPEC_BYTES", "TUTTI_MAX_SPEC_DEPTH"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> tuple[int, str]:
        code = main(["--db", str(tmp_path / "cli.db"), *args])
        return code, capsys.readouterr().err

    return run


def test_the_cli_reads_a_file_anywhere_but_never_quotes_it(
    tutti: Callable[..., tuple[int, str]], outside: Path
) -> None:
    code, err = tutti("plan", str(outside))
    assert code == EXIT_USAGE
    assert err.startswith(
        f"error: workflow spec is invalid (1 problem):\n  - {outside}: not valid YAML: "
        "line 4, column 3: "
    )
    assert SECRET not in err and "api_key" not in err


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("latin1.yaml", "name: café\n".encode("latin-1"), "is not UTF-8 text: byte 0xe9"),
        ("nul.json", b'{"steps": []}\x00', "contains NUL bytes"),
        ("big.json", b'{"steps": [{"id": "a", "value": ' + b"9" * 5000 + b"}]}", "5,000 digits"),
        ("bomb.yaml", BOMB.encode(), "values once YAML aliases are expanded"),
        # the path reads `.../[/].yaml`: rich markup, unless escaped (a MarkupError traceback)
        ("[/].yaml", b"- a\n", "a workflow spec is a mapping, got list"),
    ],
)
def test_the_cli_exits_2_for_bad_spec_files_with_the_file_and_the_problem(
    tutti: Callable[..., tuple[int, str]], tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    for cmd in ("plan", "run"):
        code, err = tutti(cmd, str(path))
        assert code == EXIT_USAGE
        assert err.startswith(f"error: workflow spec is invalid (1 problem):\n  - {path}: ")
        assert problem in err


def test_the_cli_honours_the_limit_settings(
    tutti: Callable[..., tuple[int, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.json"
    path.write_text(nested_json(10), encoding="utf-8")
    assert tutti("plan", str(path))[0] == 0
    monkeypatch.setenv("TUTTI_MAX_SPEC_DEPTH", "9")
    code, err = tutti("plan", str(path))
    assert code == EXIT_USAGE and "nested more than 9 levels deep (TUTTI_MAX_SPEC_DEPTH)" in err
    monkeypatch.setenv("TUTTI_MAX_SPEC_BYTES", "-1")
    code, err = tutti("plan", str(path))
    assert (code, err) == (
        EXIT_USAGE,
        "error: TUTTI_MAX_SPEC_BYTES must be a positive integer, got -1\n",
    )
