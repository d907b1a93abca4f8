"""memory/connection.py: the one module that opens SQLite and uses aiosqlite's private API."""

from __future__ import annotations

import ast
import inspect
import sqlite3
import threading
from importlib.metadata import version
from pathlib import Path

import aiosqlite
import pytest

from tutti_mcp.memory import connection
from tutti_mcp.memory.connection import AIOSQLITE_TESTED, Database

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_aiosqlite_is_a_version_whose_private_members_were_read() -> None:
    installed = tuple(int(part) for part in version("aiosqlite").split(".")[:2])
    low, high = AIOSQLITE_TESTED
    assert low <= installed < high, (
        f"aiosqlite {version('aiosqlite')} is outside {low}..{high} (exclusive): read its "
        "Connection._execute and Connection._conn again, then widen AIOSQLITE_TESTED in "
        "memory/connection.py"
    )


def test_aiosqlite_still_has_the_private_members_the_connection_module_relies_on() -> None:
    # _execute(fn, *args, **kwargs): queue fn on the worker thread, await its result
    params = list(inspect.signature(aiosqlite.Connection._execute).parameters.values())
    assert [(p.name, p.kind) for p in params] == [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("fn", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("args", inspect.Parameter.VAR_POSITIONAL),
        ("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    # _conn: a property giving the sqlite3 connection the worker thread owns
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property)


async def test_calls_run_on_one_worker_thread_with_the_set_up_sqlite3_connection(
    tmp_path: Path,
) -> None:
    def where(conn: sqlite3.Connection, tag: str) -> tuple[str, int, int]:
        timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        return tag, timeout, threading.get_ident()

    db = await Database.open(tmp_path / "a.db", busy_timeout_ms=1234)
    try:
        first = await db.call(where, "x")
        second = await db.run(where, db.sqlite, "y")
        assert first[:2] == ("x", 1234) and second[:2] == ("y", 1234)
        assert first[2] == second[2] != threading.get_ident()
        assert await db.fetchall("PRAGMA journal_mode") == [("wal",)]
    finally:
        await db.close()


def test_no_module_but_the_connection_module_opens_sqlite_or_touches_aiosqlite_privates() -> None:
    """Store code, memory files and benchmarks all go through memory/connection.py."""
    offenders = []
    for folder in ("memory", "engine", "bench", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "connection.py" and folder == "memory":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("_execute", "_conn")
                    # a class's own method of that name (the supervisor's _execute) is not aiosqlite's
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")
                ):
                    offenders.append(f"{path.relative_to(ROOT)}: .{node.attr}")
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "connect"
                    and isinstance(node.value, ast.Name)
                    and node.value.id in ("aiosqlite", "sqlite3")
                ):
                    offenders.append(f"{path.relative_to(ROOT)}: {node.value.id}.connect")
    # The memory benchmark's bare key-value table is a reference outside tutti's store; the
    # kill benchmarks read a killed process's database read-only, from outside, as a user would.
    assert offenders == [
        "bench/kill_fanout.py: sqlite3.connect",
        "bench/kill_fanout.py: sqlite3.connect",
        "bench/memory_refs.py: sqlite3.connect",
        "bench/pipeline_kill.py: sqlite3.connect",
        "bench/pipeline_kill.py: sqlite3.connect",
        "bench/pipeline_kill.py: sqlite3.connect",
    ], offenders
    assert "aiosqlite" in Path(connection.__file__).read_text()
