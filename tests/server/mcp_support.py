"""Shared helpers for the MCP tests: a fresh server (in-memory database) and an in-process
client per test, tool calls that return the structured answer or the error text, and the
small specs the tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import CallToolResult, TextContent

from tutti_mcp.server.app import create_server
from tutti_mcp.server.settings import Settings

MODES = ("legacy", "auto")  # handshake protocol 2025-11-25 | negotiated 2026-07-28
ROOT = Path(__file__).resolve().parents[2]


def settings(**kw: Any) -> Settings:
    return Settings(db_path=Path(":memory:"), **kw)


@asynccontextmanager
async def connect(
    mode: str, config: Settings | None = None, *, workspace: Path | None = ROOT, **client_kw: Any
) -> AsyncIterator[Client]:
    """A fresh server on `config` (default: in-memory database, no API key, no shell) and a
    client connected to it in `mode`."""
    server = create_server(config or settings(), workspace=workspace)
    try:
        async with Client(server, mode=mode, **client_kw) as client:
            yield client
    except BaseExceptionGroup as group:
        # the client's task groups wrap a failed assertion of the test body: unwrap it
        leaf = _only_leaf(group)
        if isinstance(leaf, Exception):
            raise leaf from None
        raise


def _only_leaf(exc: BaseException) -> BaseException | None:
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def call(
    client: Client, tool: str, /, progress: ProgressFnT | None = None, **args: Any
) -> dict[str, Any]:
    """Call a tool that must succeed; its structured answer."""
    result = await client.call_tool(tool, args, progress_callback=progress)
    assert not result.is_error, f"{tool}({args}) failed: {text_of(result)}"
    assert isinstance(result.structured_content, dict), f"{tool} gave no structured content"
    return result.structured_content


async def fail(client: Client, tool: str, /, **args: Any) -> str:
    """Call a tool that must fail; its error text."""
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool}({args}) should fail, answered {result.structured_content}"
    return text_of(result)


def tasks_of(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The client tasks of a run state answer, by step id."""
    return {t["step_id"]: t for t in answer["client_tasks"]}


async def until_settled(client: Client, run_id: str, rounds: int = 10) -> dict[str, Any]:
    """Call workflow_status (long-polling) until the run stops running; a bounded number of
    calls, each bounded by its wait_s."""
    answer: dict[str, Any] = {}
    for _ in range(rounds):
        answer = await call(client, "workflow_status", run_id=run_id, wait_s=5)
        if answer["status"] not in ("pending", "running"):
            return answer
    raise AssertionError(f"run {run_id} still {answer.get('status')} after {rounds} calls")


# -- specs -----------------------------------------------------------------------------------
BUILTIN_CHAIN: dict[str, Any] = {
    "name": "builtin-chain",
    "steps": [
        {"id": "a", "op": "template", "args": "hello"},
        {"id": "b", "depends_on": ["a"], "op": "template", "args": "${a.output} world"},
        {"id": "c", "depends_on": ["b"], "op": "template", "args": "<${b.output}>"},
    ],
}

# a builtin step, two independent model steps (client steps without an API key), a join
DIAMOND: dict[str, Any] = {
    "name": "diamond",
    "steps": [
        {"id": "a", "op": "template", "args": "A"},
        {"id": "b", "depends_on": ["a"], "prompt": "left of ${a.output}", "thinking": "instant"},
        {
            "id": "c",
            "depends_on": ["a"],
            "prompt": "right of ${a.output}",
            "output": "json",
            "thinking": "extended",
        },
        {
            "id": "d",
            "depends_on": ["b", "c"],
            "op": "template",
            "args": "${b.output}+${c.output.v}",
        },
    ],
}

# client steps that read inputs, a dependent, a builtin join: forks show what they redo
FORKABLE: dict[str, Any] = {
    "name": "forkable",
    "inputs": {"x": "one", "y": "two"},
    "steps": [
        {"id": "a", "prompt": "A about ${inputs.x}", "run": "client"},
        {"id": "b", "prompt": "B about ${inputs.y}", "run": "client"},
        {"id": "c", "depends_on": ["a"], "prompt": "C from ${a.output}", "run": "client"},
        {"id": "d", "depends_on": ["b", "c"], "op": "template", "args": "${b.output}|${c.output}"},
    ],
}

# one client step and nothing before it
ONE_CLIENT_STEP: dict[str, Any] = {
    "name": "one-client-step",
    "steps": [{"id": "ask", "prompt": "Name one prime.", "run": "client"}],
}


def slow_spec(seconds: str) -> dict[str, Any]:
    """A shell step that sleeps (needs allow_shell={"sleep"}), then a builtin step."""
    return {
        "name": "slow",
        "steps": [
            {"id": "s", "argv": ["sleep", seconds]},
            {"id": "t", "depends_on": ["s"], "op": "template", "args": "after s"},
        ],
    }
