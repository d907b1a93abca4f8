"""Task views (tools/tasks.py) in the wire shapes of the two protocol generations:
2025-11-25's core tasks (`Task`: ttl, pollInterval; results through `tasks/result`) and
2026-07-28's `io.modelcontextprotocol/tasks` extension (SEP-2663: ttlMs, pollIntervalMs; a
`DetailedTask` carries its input requests, result or error)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, INTERNAL_ERROR

from tutti_mcp.memory.runs.tasks import TaskStore
from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.elicitation import SCHEMA as GATE_SCHEMA
from tutti_mcp.tools.sampling import sample_params
from tutti_mcp.tools.tasks import Ask, TaskStatus, TaskView

EXTENSION_ID = "io.modelcontextprotocol/tasks"
IMMEDIATE_RESPONSE = "io.modelcontextprotocol/model-immediate-response"
RUN_ID = "tutti/runId"  # the run a task follows: workflow_status and the rest take it

# A client step asked by elicitation: its result as text (JSON text where the step wants
# JSON), or why it could not be done. MCP forms hold only flat, primitive fields.
STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "output": {
            "type": "string",
            "title": "Output",
            "description": "the step's result (JSON text when the step asks for JSON)",
        },
        "error": {
            "type": "string",
            "title": "Error",
            "description": "instead of an output: why the step could not be done",
        },
    },
}


def tasks_of(ctx: ServerRequestContext[Any, Any]) -> tuple[wfl.ToolState, TaskStore]:
    state = ctx.lifespan_context
    if not isinstance(state, wfl.ToolState) or state.tasks is None:
        raise MCPError(INTERNAL_ERROR, "this server keeps no tasks")
    return state, state.tasks


def declares_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The request itself declares the tasks extension (SEP-2663 asks this of every request
    a task may answer, whatever the client declared before)."""
    meta = (ctx.params or {}).get("_meta")
    caps = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, Mapping) else None
    ext = caps.get("extensions") if isinstance(caps, Mapping) else None
    return isinstance(ext, Mapping) and EXTENSION_ID in ext


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _base(v: TaskView) -> dict[str, Any]:
    return {
        "taskId": v.task.id,
        "statusMessage": v.message,
        "createdAt": iso(v.task.created_at),
        "lastUpdatedAt": iso(max(v.updated_at, v.task.created_at)),
    }


# -- 2025-11-25 ------------------------------------------------------------------------------
def task_v1(v: TaskView, poll_ms: int) -> dict[str, Any]:
    """A `Task` (tasks/get, tasks/list, tasks/cancel, CreateTaskResult.task)."""
    out = {**_base(v), "status": v.status.value, "ttl": v.task.ttl_ms}
    if not v.status.terminal:
        out["pollInterval"] = poll_ms
    return out


# -- 2026-07-28 ------------------------------------------------------------------------------
def run_meta(v: TaskView) -> dict[str, Any]:
    return {} if v.task.run_id is None else {"_meta": {RUN_ID: v.task.run_id}}


def created_v2(v: TaskView, poll_ms: int) -> dict[str, Any]:
    """The `CreateTaskResult` a tools/call answers with."""
    return {"resultType": "task", **_task_v2(v, poll_ms), **run_meta(v)}


def _task_v2(v: TaskView, poll_ms: int) -> dict[str, Any]:
    out = {**_base(v), "status": _status_v2(v).value, "ttlMs": v.task.ttl_ms}
    if not v.status.terminal:
        out["pollIntervalMs"] = poll_ms
    return out


def _status_v2(v: TaskView) -> TaskStatus:
    # The extension keeps `failed` for JSON-RPC errors: a run that failed is a tool result
    # with isError, so its task is `completed` (2025-11-25 calls that `failed`).
    if v.status is TaskStatus.FAILED and v.error is None:
        return TaskStatus.COMPLETED
    return v.status


def detailed_v2(v: TaskView, poll_ms: int) -> dict[str, Any]:
    """A `DetailedTask` (tasks/get): with its input requests, result (a finished task's view
    comes `with_result`) or error."""
    out = _task_v2(v, poll_ms)
    status = _status_v2(v)
    if status is TaskStatus.INPUT_REQUIRED:
        out["inputRequests"] = {a.key: input_request(a) for a in v.asks}
    elif status is TaskStatus.COMPLETED:
        out["result"] = {**(v.result or {}), "resultType": "complete"}  # a 2026-07-28 result
    elif status is TaskStatus.FAILED:
        out["error"] = {"code": INTERNAL_ERROR, "message": v.error or v.message}
    return out


def input_request(ask: Ask) -> dict[str, Any]:
    """What an ask is on the wire: a sampling request, or a form (elicitation) for a gate's
    yes or no and for a client step's result."""
    if ask.sample is not None:
        params = sample_params(ask.sample).model_dump(by_alias=True, mode="json", exclude_none=True)
        return {"method": "sampling/createMessage", "params": params}
    assert ask.step is not None
    req = ask.step.request
    gate = ask.gate
    if gate is not None:
        text = f"Approval gate {ask.step_id}:\n{gate.get('question') or req.get('instructions')}"
        preview = gate.get("preview")
        message, schema = text + (f"\n\n{preview}" if preview else ""), GATE_SCHEMA
    else:
        system = req.get("system")
        wants = req.get("output") or "text"
        message = f"Step {ask.step_id} (answer in {wants}):\n{req.get('instructions', '')}" + (
            f"\n\nSystem: {system}" if system else ""
        )
        schema = STEP_SCHEMA
    return {
        "method": "elicitation/create",
        "params": {"mode": "form", "message": message, "requestedSchema": schema},
    }
