"""A step attempt's toolbox: the tools its `tools:` (and `memory:`) grant, their
definitions for the Messages API, and the answer to a tool-use turn: every `tool_use` block
run (in parallel) and answered with a `tool_result`, in order, errors with `is_error` for
the model to act on. Every call is recorded in `transcript` (tool, arguments cut to
ARGS_CHARS, result size, is_error, milliseconds), which becomes the step's `tool_calls`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine.agent_memory import MEMORY_TOOL, SYSTEM_LINE, AgentMemory, tool_result
from tutti_mcp.engine.toolbox.base import Tool, ToolUseError
from tutti_mcp.engine.toolbox.bash import BashTool, ShellAccess
from tutti_mcp.engine.toolbox.files import GlobTool, GrepTool, ReadTool
from tutti_mcp.engine.toolbox.spec import ToolName, ToolSet
from tutti_mcp.memory.files.paths import MemoryFileError

ARGS_CHARS = 500
WORKSPACE_LINE = (
    "Your tools ({names}) act on the workspace: paths are relative to its root, and nothing "
    "outside it can be read."
)


@dataclass(frozen=True)
class MemoryTool:
    """Anthropic's memory tool, carried out on tutti's memory store (engine.agent_memory)."""

    memory: AgentMemory
    name: str = "memory"

    def definition(self) -> dict[str, Any]:
        return dict(MEMORY_TOOL)

    async def run(self, raw: object) -> str:
        try:
            return await self.memory.carry_out(raw)
        except MemoryFileError as exc:
            raise ToolUseError(str(exc)) from None


@dataclass
class Toolbox:
    tools: dict[str, Tool]
    transcript: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def for_step(
        cls,
        grants: ToolSet,
        *,
        workspace: Path,
        memory: AgentMemory | None,
        access: ShellAccess,
        own_env: Mapping[str, str],
    ) -> Toolbox:
        """The tools of one attempt; `memory` is the memory tool's store and scope (a step
        with `memory:` gets it whether or not `tools` names it)."""
        tools: dict[str, Tool] = {}
        for name in grants.names:
            if name is ToolName.READ:
                tools[name] = ReadTool(workspace)
            elif name is ToolName.GREP:
                tools[name] = GrepTool(workspace)
            elif name is ToolName.GLOB:
                tools[name] = GlobTool(workspace)
            elif name is ToolName.BASH:
                tools[name] = BashTool(workspace, grants, access, own_env)
        if memory is not None:
            tools[ToolName.MEMORY] = MemoryTool(memory)
        return cls(tools)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self.tools.values()]

    def system_lines(self) -> str:
        """What the system prompt says about the tools."""
        lines = []
        workspace = [n for n in self.tools if n != ToolName.MEMORY]
        if workspace:
            lines.append(WORKSPACE_LINE.format(names=", ".join(workspace)))
        if ToolName.MEMORY in self.tools:
            lines.append(SYSTEM_LINE)
        return "\n\n".join(lines)

    async def answer(self, uses: Sequence[Any], turn: int) -> list[dict[str, Any]]:
        """A `tool_result` for every `tool_use` block, in their order; they run at once."""
        results: list[dict[str, Any]] = [{} for _ in uses]
        records: list[dict[str, Any]] = [{} for _ in uses]

        async def one(i: int, use: Any) -> None:
            started = time.perf_counter()
            try:
                text, is_error = await self._run(use.name, use.input), False
            except ToolUseError as exc:
                text, is_error = str(exc), True
            text = text or "(no output)"
            results[i] = tool_result(use.id, text, is_error=is_error)
            records[i] = {
                "turn": turn,
                "tool": use.name,
                "input": _short(use.input),
                "result_bytes": len(text.encode()),
                "is_error": is_error,
                "ms": round((time.perf_counter() - started) * 1000),
            }

        async with anyio.create_task_group() as tg:
            for i, use in enumerate(uses):
                tg.start_soon(one, i, use)
        self.transcript += records
        return results

    async def _run(self, name: str, raw: object) -> str:
        tool = self.tools.get(name)
        if tool is None:
            names = list(self.tools)
            here = (
                f"the only tool here is `{names[0]}`"
                if len(names) == 1
                else "the tools here are " + ", ".join(f"`{n}`" for n in names)
            )
            raise ToolUseError(f"unknown tool {name!r}: {here}")
        return await tool.run(raw)


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= ARGS_CHARS else text[: ARGS_CHARS - 1] + "…"
