"""Memory for the model in a step: Anthropic's memory tool (`memory_20250818`), carried out
on tutti's memory store, in the scope the step's `memory:` field names.

A step's `memory` is a keyword resolved per run ("workflow" -> `workflow:<name>`,
"project" -> `project:<the run's workspace>`, "global") or an explicit scope. `prompt`
steps get the tool itself (in their toolbox: engine.toolbox); `client` steps
are told to use tutti's `memory` MCP tool in that scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.files.paths import GLOBAL, ROOT, MemoryFileError, parse_scope
from tutti_mcp.memory.files.store import step_author

TOOL_NAME = "memory"
# In the GA `ToolUnionParam` of the anthropic SDK: plain `messages.create` takes it.
MEMORY_TOOL: dict[str, Any] = {"type": "memory_20250818", "name": TOOL_NAME}
SYSTEM_LINE = (
    f"You have a memory directory at {ROOT} (the `memory` tool), kept between runs. Check it "
    "first: view it before you start, then record there what would help the next time."
)


def resolve_scope(memory: str, workflow: str, workspace: Path) -> str:
    """The store scope of a step's `memory` value for a run of `workflow` in `workspace`."""
    if memory == "workflow":
        scope = f"workflow:{workflow}"
    elif memory == "project":
        scope = f"project:{workspace}"
    elif memory == GLOBAL:
        scope = GLOBAL
    else:
        scope = memory
    try:
        return parse_scope(scope)
    except MemoryFileError as exc:
        raise ConfigurationError(
            f"`memory: {memory}` does not give a usable scope: {exc}"
        ) from None


def client_instructions(scope: str) -> str:
    """What a client step's handoff says about memory."""
    return (
        f'Memory: this step has memory in scope "{scope}". Use tutti\'s `memory` tool with '
        f'scope: "{scope}": view {ROOT} first, and record there what would help the next time.'
    )


@dataclass(frozen=True)
class AgentMemory:
    """The memory tool of one step attempt: the store, the scope, the author of changes."""

    store: AsyncMemoryFiles
    scope: str
    author: str

    @classmethod
    def for_step(
        cls,
        store: AsyncMemoryFiles,
        memory: str,
        *,
        run_id: str,
        step_id: str,
        workflow: str,
        workspace: Path,
    ) -> AgentMemory:
        return cls(store, resolve_scope(memory, workflow, workspace), step_author(run_id, step_id))

    async def carry_out(self, command: object) -> str:
        """One memory tool command on the store; MemoryFileError (for the model to act on)
        when it cannot be done."""
        if not isinstance(command, Mapping):
            raise MemoryFileError('the memory tool\'s input is an object: {"command": ...}')
        return await self.store.execute(command, scope=self.scope, author=self.author)


def tool_result(tool_use_id: str, text: str, *, is_error: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": text}
    if is_error:
        block["is_error"] = True
    return block
