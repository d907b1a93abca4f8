"""The memory tool's input objects ({"command": "view", "path": ...}), checked field by field
and carried out on a MemoryFiles store: what agents in `prompt` steps and the MCP `memory`
tool both send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tutti_mcp.memory.files.paths import GLOBAL, MemoryFileError
from tutti_mcp.memory.files.store import CLIENT, MemoryFiles

COMMANDS = ("view", "create", "str_replace", "insert", "delete", "rename")


def run_command(
    files: MemoryFiles, command: Mapping[str, Any], *, scope: str = GLOBAL, author: str = CLIENT
) -> str:
    """Carry out one memory-tool command given as its input object
    ({"command": "view", "path": ...}); the result is the text the tool returns."""
    name = command.get("command")
    if name not in COMMANDS:
        raise MemoryFileError(f"unknown command {name!r}: use one of {', '.join(COMMANDS)}")

    def need(field: str, kind: type, example: str) -> Any:
        value = command.get(field)
        if value is None:
            raise MemoryFileError(f"`{name}` needs `{field}` ({example})")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise MemoryFileError(f"`{field}` must be {example}")
        return value

    if name == "view":
        rng = command.get("view_range")
        if rng is not None and (
            not isinstance(rng, list | tuple)
            or len(rng) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in rng)
        ):
            raise MemoryFileError(
                "`view_range` must be two line numbers [start, end]; end -1 reads to the end"
            )
        return files.view(need("path", str, "a path like /memories/notes.md"), rng, scope=scope)
    if name == "create":
        return files.create(
            need("path", str, "a path like /memories/notes.md"),
            need("file_text", str, "the file's text"),
            scope=scope,
            author=author,
        )
    if name == "str_replace":
        return files.str_replace(
            need("path", str, "a path like /memories/notes.md"),
            need("old_str", str, "the exact text to replace"),
            need("new_str", str, 'the replacement text ("" deletes old_str)'),
            scope=scope,
            author=author,
        )
    if name == "insert":
        return files.insert(
            need("path", str, "a path like /memories/notes.md"),
            need("insert_line", int, "a line number; 0 inserts at the top"),
            need("insert_text", str, "the text to insert"),
            scope=scope,
            author=author,
        )
    if name == "delete":
        return files.delete(
            need("path", str, "a path like /memories/notes.md"), scope=scope, author=author
        )
    return files.rename(
        need("old_path", str, "the path to move"),
        need("new_path", str, "where to move it"),
        scope=scope,
        author=author,
    )
