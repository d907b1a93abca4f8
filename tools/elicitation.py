"""MCP elicitation for approval gates: the engine's `Asker`, served by the client that
started (or last watched) the run, when it declared the `elicitation` capability and its
connection has a back-channel (handshake protocols, <= 2025-11-25).

Anything else (no such client, the 2026-07-28 protocol without a back-channel, an error,
an answer without a yes or no) answers None: the gate then waits as a client task that
the calling agent puts to its user, or `tutti approve` answers."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult

from tutti_mcp.engine.executors.gate import ApprovalAnswer, ApprovalQuestion
from tutti_mcp.tools.sampling import related_task

log = logging.getLogger("tutti.elicitation")

# The form: a yes or no and an optional note (MCP allows only flat, primitive fields).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve", "description": "yes to go on"},
        "note": {"type": "string", "title": "Note", "description": "why, or what to change"},
    },
    "required": ["approve"],
}


def client_can_elicit(ctx: Context[Any, Any]) -> bool:
    caps = ctx.client_capabilities
    return caps is not None and caps.elicitation is not None


def message(question: ApprovalQuestion) -> str:
    text = f"Workflow run {question.run_id}, step {question.step_id}:\n{question.question}"
    return text + (f"\n\n{question.preview}" if question.preview else "")


class GateAsker:
    """Asks the user of the client bound to a run (see `bind`)."""

    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}  # run id -> the ServerSession to ask through
        self.task_ids: dict[str, str | None] = {}  # run id -> the MCP task it follows, if any

    def bind(self, run_id: str, ctx: Context[Any, Any], task_id: str | None = None) -> None:
        """Ask this call's client, if it can be asked (`task_id`: the MCP task the client
        follows the run by, named in the question)."""
        if client_can_elicit(ctx) and ctx.session.can_send_request:
            if task_id is None and self.sessions.get(run_id) is ctx.session:
                task_id = self.task_ids.get(run_id)  # the same client, still following its task
            self.sessions[run_id] = ctx.session
            self.task_ids[run_id] = task_id
        else:  # a newer client that cannot be asked: its gates wait as client tasks
            self.sessions.pop(run_id, None)
            self.task_ids.pop(run_id, None)

    def forget(self, run_id: str) -> None:
        self.sessions.pop(run_id, None)
        self.task_ids.pop(run_id, None)

    async def __call__(self, question: ApprovalQuestion) -> ApprovalAnswer | None:
        session = self.sessions.get(question.run_id)
        if session is None:
            return None
        params = ElicitRequestFormParams(
            message=message(question),
            requested_schema=SCHEMA,
            _meta=related_task(self.task_ids.get(question.run_id)),
        )
        try:
            result = await session.send_request(ElicitRequest(params=params), ElicitResult)
        except (
            MCPError,
            NoBackChannelError,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
        ) as exc:
            log.info("gate %s: elicitation failed (%s); a client task asks", question.step_id, exc)
            return None
        if result.action != "accept":  # declined or cancelled by the user: a no
            return ApprovalAnswer(False, f"{result.action}d in the client")
        content = result.content or {}
        approve, note = content.get("approve"), content.get("note")
        if not isinstance(approve, bool):
            return None
        return ApprovalAnswer(approve, note if isinstance(note, str) and note else None)
