"""Helpers for the MCP tasks tests: requests the Python SDK's client has no method for.

- 2025-11-25: the SDK's client validates a tools/call answer as a CallToolResult, so a
  task-augmented call (answered with a CreateTaskResult) goes out as raw JSON-RPC through
  the client's dispatcher; so do the tasks/* requests, to compare whole wire answers.
- 2026-07-28: the client's extension interface declares `io.modelcontextprotocol/tasks`
  and claims the `resultType: "task"` answer (`TasksClaim`); tasks/* requests go through
  `session.send_request`, which stamps the per-request envelope."""

from __future__ import annotations

from typing import Any, Literal

from mcp.client import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import BaseModel, ConfigDict


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One JSON-RPC request as is, its result as is (MCPError for an error answer)."""
    dispatcher = client.session._dispatcher  # the SDK offers no public raw request
    return await dispatcher.send_raw_request(method, params, {})


async def start_task_v1(
    client: Client, tool: str, args: dict[str, Any], ttl: int | None = None
) -> dict[str, Any]:
    """A 2025-11-25 task-augmented tools/call; its CreateTaskResult."""
    task = {} if ttl is None else {"ttl": ttl}
    return await raw(client, "tools/call", {"name": tool, "arguments": args, "task": task})


# -- 2026-07-28 ------------------------------------------------------------------------------
class TaskCreated(Result):
    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = "task"
    task_id: str
    status: str


async def _unresolved(created: TaskCreated, ctx: ClaimContext) -> CallToolResult:
    raise AssertionError("the tests take the task handle (allow_claimed=True)")


class TasksClaim(ClientExtension):
    """Declares the tasks extension and accepts `resultType: "task"` answers."""

    identifier = "io.modelcontextprotocol/tasks"

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskCreated, resolve=_unresolved)]


class _Params(RequestParams):
    model_config = ConfigDict(extra="allow")


class _Request(Request[_Params, str]):
    method: str
    params: _Params


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")  # keeps every wire key as it came


async def request(client: Client, method: str, **params: Any) -> dict[str, Any]:
    """A tasks/* request on a 2026-07-28 connection (stamped with its envelope)."""
    req = _Request(method=method, params=_Params(**params))
    answer = await client.session.send_request(req, _Answer)
    return dict(answer.model_extra or {})


async def start_task_v2(client: Client, tool: str, args: dict[str, Any]) -> TaskCreated:
    created = await client.session.call_tool(tool, args, allow_claimed=True)
    assert isinstance(created, TaskCreated), created
    return created
