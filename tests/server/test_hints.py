"""How printed hints spell the `tutti` command (server.hints.command_prefix): the way this
process was started, so that the hint works when pasted into the user's shell."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tutti_mcp.server.hints import command_prefix, spell_hints

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX scripts")


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A uv project with a `.venv` holding a `tutti` script, and another `tutti` elsewhere."""
    project = tmp_path / "clone"
    venv_bin = project / ".venv" / "bin"
    other_bin = tmp_path / "other"
    for d in (venv_bin, other_bin):
        d.mkdir(parents=True)
        script = d / "tutti"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return {"project": project, "venv": project / ".venv", "bin": venv_bin, "other": other_bin}


def prefix(layout: dict[str, Path], *, path: list[Path], uv: bool = False, **kw: object) -> str:
    env = {"PATH": os.pathsep.join(map(str, path)), **({"UV": "/usr/bin/uv"} if uv else {})}
    args: dict[str, object] = {
        "argv0": str(layout["bin"] / "tutti"),
        "prefix": layout["venv"],
        "scripts": layout["bin"],
        "cwd": layout["project"],
        **kw,
    }
    return command_prefix(env=env, **args)  # type: ignore[arg-type]


def test_tutti_when_this_installations_tutti_is_on_path(layout: dict[str, Path]) -> None:
    assert prefix(layout, path=[layout["bin"]]) == "tutti"


def test_uv_run_tutti_under_uv_run_whose_path_is_gone_afterwards(
    layout: dict[str, Path],
) -> None:
    assert prefix(layout, path=[layout["bin"]], uv=True) == "uv run tutti"


def test_uv_run_tutti_from_a_clone_whose_venv_is_not_on_path(layout: dict[str, Path]) -> None:
    assert prefix(layout, path=[]) == "uv run tutti"
    # another installation's tutti on PATH is not this one
    assert prefix(layout, path=[layout["other"]]) == "uv run tutti"


def test_uv_run_names_the_project_when_the_current_directory_is_outside_it(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    got = prefix(layout, path=[], cwd=tmp_path)
    assert got == f"uv run --project {layout['project'].resolve()} tutti"


def test_python_m_when_started_as_a_module(layout: dict[str, Path]) -> None:
    main = str(layout["project"] / "tutti_mcp" / "__main__.py")
    assert prefix(layout, path=[layout["bin"]], argv0=main) == "uv run python -m tutti_mcp"
    outside = layout["project"].parent / "site"
    got = prefix(layout, path=[], argv0=main, prefix=outside)
    assert got.endswith(" -m tutti_mcp") and not got.startswith("uv")


def test_quoted_tutti_commands_in_a_message_are_respelled() -> None:
    text = "no run with id 'x'; `tutti runs` lists the known runs; tutti itself is fine"
    assert spell_hints(text, "uv run tutti") == (
        "no run with id 'x'; `uv run tutti runs` lists the known runs; tutti itself is fine"
    )
    assert spell_hints(text, "tutti") == text
