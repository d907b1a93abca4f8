"""The distribution `tutti-mcp` installs one import package, `tutti_mcp`: nothing generic
(`engine`, `tools`, ...) lands in site-packages, and every import in the project goes
through `tutti_mcp`, so the clone and the installed wheel run the same modules."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tutti_mcp
from tests.server.mcp_support import connect

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("engine", "memory", "server", "tools")


def _python_files() -> list[Path]:
    return [
        p
        for top in (*ROOMS, "tests", "bench", "tutti_mcp")
        for p in (ROOT / top).rglob("*.py")
        if not (ROOT / top).is_symlink()
    ]


def test_no_module_imports_a_room_by_its_bare_top_level_name() -> None:
    bare = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            bare += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}"
                for n in names
                if n.split(".")[0] in ROOMS
            ]
    assert bare == [], "import these through tutti_mcp (e.g. tutti_mcp.engine.spec)"


def test_the_wheel_holds_only_tutti_mcp_and_its_dist_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hatchling.build import build_wheel

    monkeypatch.chdir(ROOT)
    wheel = tmp_path / build_wheel(str(tmp_path))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(f"tutti_mcp-{tutti_mcp.__version__}.dist-info/entry_points.txt")
    assert {n.split("/")[0] for n in names} == {
        "tutti_mcp",
        f"tutti_mcp-{tutti_mcp.__version__}.dist-info",
    }
    for room in ROOMS:
        assert f"tutti_mcp/{room}/__init__.py" in names
    assert "tutti_mcp/py.typed" in names
    assert f"tutti_mcp-{tutti_mcp.__version__}.dist-info/licenses/LICENSE" in names
    assert b"tutti = tutti_mcp.server.cli:main" in entry_points
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_python_dash_m_tutti_mcp_is_the_tutti_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tutti_mcp", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == f"tutti {tutti_mcp.__version__}"


@pytest.mark.anyio
async def test_the_server_reports_the_package_version() -> None:
    async with connect("legacy") as client:
        info = client.server_info
    assert info is not None
    assert (info.name, info.version) == ("tutti", tutti_mcp.__version__)
