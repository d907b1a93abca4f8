"""Commands printed as hints (`tutti show RUN_ID`) spelled so they work when pasted.

The rule: spell the command the way this process was started. In a clone, `tutti` is on
PATH only while `uv run` runs (it puts `.venv/bin` there), so a hint that says `tutti ...`
fails in the user's shell afterwards; `uv run tutti ...` works."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

_HINT = re.compile(r"`tutti(?=[ `])")


def command_prefix(
    *,
    argv0: str | None = None,
    env: Mapping[str, str] | None = None,
    prefix: Path | None = None,
    scripts: Path | None = None,
    cwd: Path | None = None,
) -> str:
    """What to type before a subcommand (`run`, `show RUN_ID`, ...):

    - `tutti` when started as the `tutti` script and the `tutti` on PATH is this
      installation's, and not under `uv run` (whose PATH is gone once it exits);
    - else `uv run tutti` when this interpreter is a uv project's `.venv` (with
      `--project DIR` when the current directory is outside the project; `uv run python -m
      tutti_mcp` when started that way);
    - else `python -m tutti_mcp` with this interpreter.

    The keyword arguments stand in for the process's own (sys.argv[0], os.environ,
    sys.prefix, the scripts directory, the current directory) in tests."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    env = os.environ if env is None else env
    as_module = Path(argv0).name == "__main__.py"
    if not as_module and not env.get("UV") and _ours_on_path(env, scripts):
        return "tutti"
    project = _uv_project(Path(sys.prefix) if prefix is None else prefix)
    if project is not None:
        here = (cwd or Path.cwd()).resolve()
        uv_run = "uv run" if here.is_relative_to(project) else f"uv run --project {_q(project)}"
        return f"{uv_run} {'python -m tutti_mcp' if as_module else 'tutti'}"
    return f"{_python(env)} -m tutti_mcp"


def spell_hints(text: str, prefix: str) -> str:
    """`text` with each quoted `tutti ...` command spelled with `prefix` instead."""
    return text if prefix == "tutti" else _HINT.sub(f"`{prefix}", text)


def _ours_on_path(env: Mapping[str, str], scripts: Path | None) -> bool:
    found = shutil.which("tutti", path=env.get("PATH", ""))
    if found is None:
        return False
    ours = scripts or Path(sysconfig.get_path("scripts"))
    # pipx and `uv tool` put a link to the tool environment's script on PATH
    return Path(found).resolve().parent == ours.resolve()


def _uv_project(prefix: Path) -> Path | None:
    """The project whose `.venv` this interpreter runs in, if it is one."""
    if prefix.name == ".venv" and (prefix.parent / "pyproject.toml").is_file():
        return prefix.parent.resolve()
    return None


def _python(env: Mapping[str, str]) -> str:
    found = shutil.which("python", path=env.get("PATH", ""))
    if found is not None and os.path.abspath(found) == os.path.abspath(sys.executable):
        return "python"
    return _q(Path(sys.executable))


def _q(path: Path) -> str:
    return shlex.quote(str(path))
