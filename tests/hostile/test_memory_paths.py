"""Hostile memory paths through the MCP `memory` tool (in-process client, the store in a
database file in tmp_path): each is refused with its reason, or lands at its canonical path
under /memories; nothing is stored anywhere else, and nothing is written to disk outside the
database, not even by `tutti memory export` of what was accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from tests.server.mcp_support import MODES, connect, fail, text_of
from tutti_mcp.server.cli import EXIT_OK, main
from tutti_mcp.server.settings import Settings

pytestmark = pytest.mark.anyio

# (path, what the refusal says)
REFUSED: list[tuple[str, str]] = [
    ("/memories/../etc/passwd", "would escape /memories directory ('..' is not allowed)"),
    ("/memories/a/../../x", "would escape /memories directory"),
    ("/memories/..", "would escape /memories directory"),
    ("/etc/passwd", "Path must start with /memories, got: /etc/passwd"),
    ("/tmp/memories/x", "Path must start with /memories"),
    ("/memoriesX/a", "Path must start with /memories"),
    ("memories/a.md", "Path must start with /memories, got: 'memories/a.md' (e.g. /memories/a.md)"),
    ("../memories/a.md", "Path must start with /memories"),
    ("/memories/a\x00b.md", "contains control characters ('\\x00'); use printable text"),
    ("/memories/a\nb.md", "contains control characters ('\\n')"),
    ("/memories/a\rb.md", "contains control characters ('\\r')"),
    ("/memories/\x1b[31mred.md", "contains control characters ('\\x1b')"),
    ("/memories/a\x7fb.md", "contains control characters ('\\x7f')"),
    ("/memories/a\x85b.md", "contains control characters ('\\x85')"),
    ("/memories/" + "a" * 2000, "Path is 2010 bytes; at most 1024 are allowed"),
    ("/memories/" + "a" * 300, "is longer than 255 bytes"),
    ("/memories" + "/d" * 40, "is 40 levels deep; at most 32"),
    ("/memories/%2e%2e/x.md", "Path segment '%2e%2e' reads '..' percent-decoded"),
    ("/memories/%2E%2e%2Fetc", "reads '../etc' percent-decoded"),
    ("/memories/.%2e", "reads '..' percent-decoded"),
    ("/memories/..\\..\\x.md", "has a backslash; separate directories with /"),
    ("/memories/a\\b.md", "has a backslash"),
    ("/memories\\..\\x", "Path must start with /memories"),
    ("/memories/\u2025/x.md", "reads '..' as plain characters"),  # two dot leader
    ("/memories/\uff0e\uff0e/x.md", "reads '..' as plain characters"),  # fullwidth full stops
    ("/memories/\u2024\u2024/x.md", "reads '..' as plain characters"),  # one dot leaders
    ("/memories/\uff0e/x.md", "reads '.' as plain characters"),
    ("/memories/a\uff0fb.md", "reads 'a/b.md' as plain characters"),  # fullwidth solidus
    ("/memories/\u202egpj.exe", "has invisible or invalid characters (U+202E)"),  # bidi override
    ("/memories/a\u200bb.md", "has invisible or invalid characters (U+200B)"),  # zero width
    ("/memories/a\u2028b.md", "has invisible or invalid characters (U+2028)"),  # line separator
    ("/memories/\ud800.md", "is not valid Unicode (a lone surrogate)"),
    ("/memories/a/.", "has a '.' segment; write the path without it"),
    ("/memories/./a.md", "has a '.' segment"),
    ("/memories", "/memories is the memory directory itself"),
    ("/memories/", "/memories is the memory directory itself"),
]

# (path as given, where it is stored)
ACCEPTED: list[tuple[str, str]] = [
    ("/memories/notes/", "/memories/notes"),  # a trailing slash collapses
    ("//memories//deep//file.md", "/memories/deep/file.md"),
    ("/memories/trailing.", "/memories/trailing."),  # a name, not a segment '.'
    ("/memories/.../x.md", "/memories/.../x.md"),  # three dots: a name
    ("/memories/~/home.md", "/memories/~/home.md"),  # no home directory here
    ("/memories/100%.md", "/memories/100%.md"),  # a percent sign that decodes to nothing
    ("/memories/café ☕.md", "/memories/café ☕.md"),
]


async def memory(client: Client, **args: Any) -> tuple[bool, str]:
    result = await client.call_tool("memory", args)
    return result.is_error, text_of(result)


async def stored(client: Client) -> set[str]:
    """Every file path in the store, from a search for the text every test file holds."""
    result = await client.call_tool("memory_search", {"query": "marker", "limit": 50})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return {hit["path"] for hit in result.structured_content["hits"]}


def db_settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "memory.db")


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mode", MODES)
async def test_hostile_paths_are_refused_with_the_reason_and_nothing_is_stored(
    mode: str, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    with anyio.fail_after(30):
        async with connect(mode, db_settings(tmp_path), workspace=ws) as c:
            answers = {
                path: await memory(c, command="create", path=path, file_text="marker")
                for path, _ in REFUSED
            }
            left = await stored(c)
    wrong = {
        path: answers[path]
        for path, why in REFUSED
        if not (answers[path][0] and why in answers[path][1])
    }
    assert wrong == {}
    assert left == set()
    # the database is the only thing written: nothing in the workspace, nothing beside it
    assert {f for f in files_under(tmp_path) if not f.startswith("memory.db")} == set()


async def test_hostile_paths_are_refused_by_every_command_that_takes_a_path(
    tmp_path: Path,
) -> None:
    hostile = [p for p, _ in REFUSED if p not in ("/memories", "/memories/")]
    with anyio.fail_after(30):
        async with connect("auto", db_settings(tmp_path)) as c:
            assert not (
                await memory(c, command="create", path="/memories/ok.md", file_text="marker")
            )[0]
            calls: list[dict[str, Any]] = []
            for path in hostile:
                calls += [
                    {"command": "view", "path": path},
                    {"command": "str_replace", "path": path, "old_str": "a", "new_str": "b"},
                    {"command": "insert", "path": path, "insert_line": 0, "insert_text": "x"},
                    {"command": "delete", "path": path},
                    {"command": "rename", "old_path": "/memories/ok.md", "new_path": path},
                    {"command": "rename", "old_path": path, "new_path": "/memories/moved.md"},
                ]
            answers = [await memory(c, **args) for args in calls]
            left = await stored(c)
    accepted = [
        (args, text) for args, (is_error, text) in zip(calls, answers, strict=True) if not is_error
    ]
    assert accepted == []
    assert all("Error executing tool memory: " in text for _, text in answers)
    assert left == {"/memories/ok.md"}


async def test_odd_but_harmless_paths_land_at_their_canonical_place_under_memories(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(30):
        async with connect("auto", db_settings(tmp_path)) as c:
            created = [
                await memory(c, command="create", path=given, file_text="marker")
                for given, _ in ACCEPTED
            ]
            left = await stored(c)
    assert created == [(False, f"File created successfully at: {where}") for _, where in ACCEPTED]
    assert left == {where for _, where in ACCEPTED}


async def test_export_of_what_was_accepted_writes_only_inside_the_export_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with anyio.fail_after(30):
        async with connect("auto", db_settings(tmp_path)) as c:
            for given, _ in ACCEPTED:
                await memory(c, command="create", path=given, file_text="marker")
            for path, _ in REFUSED:
                await fail(c, "memory", command="create", path=path, file_text="marker")
    out = tmp_path / "export"
    before = files_under(tmp_path)
    monkeypatch.delenv("TUTTI_DB", raising=False)
    assert main(["--db", str(tmp_path / "memory.db"), "memory", "export", str(out)]) == EXIT_OK
    capsys.readouterr()
    written = files_under(tmp_path) - before
    assert written == {f"export{where.removeprefix('/memories')}" for _, where in ACCEPTED}
    assert all((tmp_path / f).resolve().is_relative_to(out.resolve()) for f in written)
