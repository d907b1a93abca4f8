"""The memory tools and resources, registered on an MCPServer: thin adapters over
`tools.memory` that turn the store's errors into ToolErrors (or resource errors) saying
what to do next.

Resources: `memory://memories/<path>` is a file of the global scope (a directory gives
its listing); `memory://project/<key>/memories/<path>` and
`memory://workflow/<name>/memories/<path>` are the other scopes, the key percent-encoded
(`memory://project/%2Fhome%2Fme%2Frepo/memories/notes.md`).

(No `from __future__ import annotations` here: the SDK reads these annotations at
registration.)"""

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.mcpserver.resources import Resource, ResourceTemplate
from mcp.server.mcpserver.resources.templates import ResourceSecurity
from mcp_types import InputRequiredResult, ToolAnnotations
from pydantic import Field

from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.files.memory_tool import COMMANDS
from tutti_mcp.memory.files.paths import (
    GLOBAL,
    ROOT,
    MemoryFileError,
    MemoryNotFound,
    MemoryPathError,
)
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.tools import memory as mt
from tutti_mcp.tools.errors import resource_errors, tool_errors
from tutti_mcp.tools.workflow_mcp import reply, state_of

Command = Literal["view", "create", "str_replace", "insert", "delete", "rename"]
assert set(get_args(Command)) == set(COMMANDS)
Scope = Annotated[str, Field(description="global | project:<key> | workflow:<name>")]
FilePath = Annotated[str | None, Field(description="e.g. /memories/notes.md")]


def memory_of(ctx: Context[Any, Any]) -> AsyncMemoryFiles:
    mem = state_of(ctx).memory
    if mem is None:
        raise ConfigurationError("this server was started without a memory store")
    return mem


def register(server: MCPServer[Any]) -> None:
    read_only = ToolAnnotations(read_only_hint=True)

    @server.tool(structured_output=False)
    async def memory(
        command: Command,
        ctx: Context,
        path: FilePath = None,
        view_range: Annotated[
            list[int] | None, Field(description="[first, last] line; last -1: to the end")
        ] = None,
        file_text: str | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        insert_line: Annotated[int | None, Field(description="0: at the top")] = None,
        insert_text: str | None = None,
        old_path: str | None = None,
        new_path: str | None = None,
        scope: Scope = GLOBAL,
    ) -> str:
        """Anthropic's memory tool over tutti's store: files under /memories, kept across
        sessions, every change a revision (memory_history). view (path, view_range?),
        create (path, file_text), str_replace (path, old_str, new_str), insert (path,
        insert_line, insert_text), delete (path), rename (old_path, new_path)."""
        fields = {
            "command": command,
            "path": path,
            "view_range": view_range,
            "file_text": file_text,
            "old_str": old_str,
            "new_str": new_str,
            "insert_line": insert_line,
            "insert_text": insert_text,
            "old_path": old_path,
            "new_path": new_path,
        }
        with tool_errors(scope):
            return await mt.command(memory_of(ctx), fields, scope=scope)

    @server.tool(annotations=read_only)
    async def memory_search(
        query: Annotated[str, Field(description='words (all must match), "a phrase"')],
        ctx: Context,
        scope: Annotated[str | None, Field(description="default: every scope")] = None,
        prefix: str = ROOT,
        limit: Annotated[int, Field(ge=1, le=mt.SEARCH_LIMIT)] = 10,
    ) -> mt.MemorySearch:
        """Full-text search of memory files, best first; when no file has every word, files
        with any of them."""
        with tool_errors(scope or GLOBAL):
            found = await mt.search(memory_of(ctx), query, scope=scope, prefix=prefix, limit=limit)
            return reply(found)

    @server.tool()
    async def memory_history(
        ctx: Context,
        path: Annotated[str, Field(description="a file, or a directory: all below it")] = ROOT,
        scope: Scope = GLOBAL,
        limit: Annotated[int, Field(ge=1, le=mt.HISTORY_LIMIT)] = 20,
        rev: Annotated[int | None, Field(description="show this revision's text")] = None,
        restore: Annotated[bool, Field(description="bring revision rev back")] = False,
    ) -> mt.MemoryHistory:
        """Revisions of memory files, newest first, deleted files included; read or restore
        one (a restore is a new revision: it can be undone)."""
        with tool_errors(scope):
            answer = await mt.history(
                memory_of(ctx), path, scope=scope, limit=limit, rev=rev, restore=restore
            )
            return reply(answer)

    _resources(server)


# -- resources -------------------------------------------------------------------------------
class _MemoryTemplate(ResourceTemplate):
    """A template whose resources are text/markdown for .md files, else text/plain (the SDK
    gives a template one mime type)."""

    async def create_resource(
        self, uri: str, params: dict[str, Any], context: Any
    ) -> Resource | InputRequiredResult:
        resource = await super().create_resource(uri, params, context)
        if isinstance(resource, Resource) and uri.lower().endswith(".md"):
            return resource.model_copy(update={"mime_type": "text/markdown"})
        return resource


# The variables are store keys, not filesystem paths: memory paths are checked by the store
# ('..' refused), and a project key is often an absolute path.
_STORE_KEYS = ResourceSecurity(exempt_params=frozenset({"path", "key", "name"}))


async def read(ctx: Context[Any, Any], root_uri: str, scope: str, path: str) -> str:
    """A file's raw text, or a directory's listing; `path` follows `/memories` in the URI."""
    if path and not path.startswith("/"):
        raise ResourceNotFoundError(f"not a memory URI: use {root_uri}/<path below {ROOT}>")
    full = ROOT + path.rstrip("/")
    with resource_errors(root_uri, scope):
        mem = memory_of(ctx)

        def text(files: MemoryFiles) -> str:
            try:
                return files.read(full, scope=scope)
            except (MemoryNotFound, MemoryPathError):
                raise
            except MemoryFileError:  # a directory: its listing
                return files.view(full, scope=scope)

        return await mem.run(text)


def _resources(server: MCPServer[Any]) -> None:
    async def global_file(path: str, ctx: Context) -> str:
        """A memory file of the global scope (a directory: its listing)."""
        return await read(ctx, "memory://memories", GLOBAL, path)

    async def project_file(key: str, path: str, ctx: Context) -> str:
        """A memory file of scope project:<key> (key percent-encoded)."""
        return await read(
            ctx, f"memory://project/{quote(key, safe='')}/memories", f"project:{key}", path
        )

    async def workflow_file(name: str, path: str, ctx: Context) -> str:
        """A memory file of scope workflow:<name> (name percent-encoded)."""
        return await read(
            ctx, f"memory://workflow/{quote(name, safe='')}/memories", f"workflow:{name}", path
        )

    fns: list[tuple[str, Callable[..., Any]]] = [
        ("memory://memories{+path}", global_file),
        ("memory://project/{key}/memories{+path}", project_file),
        ("memory://workflow/{name}/memories{+path}", workflow_file),
    ]
    for uri, fn in fns:
        template = _MemoryTemplate.from_function(
            fn, uri_template=uri, mime_type="text/plain", security=_STORE_KEYS
        )
        # the SDK's decorator cannot make a template of a subclass: add it as it would
        server._resource_manager._templates[uri] = template


__all__ = ["register"]
