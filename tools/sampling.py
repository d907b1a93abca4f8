"""MCP sampling for `sampling` steps: the engine's `Sampler`, served by the client that
started (or last watched) the run.

Two ways, by protocol generation:
- handshake protocols (<= 2025-11-25, what Claude clients and MCP Inspector speak today)
  have a back-channel: the request goes to the client at once, while the run goes on in
  the background;
- the 2026-07-28 protocol has no back-channel outside a call: the step's request is
  parked until the client can take it: in a `workflow_status` call (the SDK's
  `Resolve(Sample)`, which rides the call's input-required round trip; a call already
  long-polling takes a request parked during its wait), or, for a run that is an MCP
  task, as one of the task's input requests (`tasks/get`, answered by `tasks/update`).

A client that declared no sampling capability cannot answer: once it is the one connected
to the run, the run's sampling requests fail at once, saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Sample
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp_types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ModelHint,
    ModelPreferences,
    RelatedTaskMetadata,
    RequestParamsMeta,
    SamplingMessage,
    TextContent,
)

from tutti_mcp.engine.errors import StepError, StepErrorKind
from tutti_mcp.engine.executors.sampling import SamplingReply, SamplingRequest

SAMPLING_ALTERNATIVES = (
    "Alternatives: set `run: client` on the step (or "
    "`defaults.model_executor: client`) so the calling agent does it and reports with "
    "step_complete, or `run: prompt` with ANTHROPIC_API_KEY set for the server"
)
NO_SAMPLING = (
    "the client connected to this run does not offer MCP sampling (Claude Code and Claude "
    "Desktop do not). " + SAMPLING_ALTERNATIVES
)


def client_can_sample(ctx: Context[Any, Any]) -> bool:
    caps = ctx.client_capabilities
    return caps is not None and caps.sampling is not None


def sample_params(req: SamplingRequest) -> CreateMessageRequestParams:
    return CreateMessageRequestParams(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=req.prompt))],
        max_tokens=req.max_tokens,
        system_prompt=req.system,
        model_preferences=ModelPreferences(
            hints=[ModelHint(name=req.model_hint)] if req.model_hint else None,
            intelligence_priority=req.intelligence,
            speed_priority=req.speed,
            cost_priority=req.cost,
        ),
        metadata={"tutti_step": req.key, "thinking": req.thinking},
    )


def as_sample(req: SamplingRequest) -> Sample:
    p = sample_params(req)
    return Sample(
        p.messages,
        max_tokens=p.max_tokens,
        system_prompt=p.system_prompt,
        model_preferences=p.model_preferences,
        metadata=p.metadata,
    )


def reply_of(result: CreateMessageResult) -> SamplingReply:
    content = result.content
    if not isinstance(content, TextContent):
        raise StepError(
            f"the client's model answered with {getattr(content, 'type', 'non-text')} content; "
            "a sampling step needs text",
            retryable=False,
            kind=StepErrorKind.SAMPLING,
        )
    return SamplingReply(content.text, result.model, result.stop_reason)


RELATED_TASK = "io.modelcontextprotocol/related-task"


def related_task(task_id: str | None) -> RequestParamsMeta | None:
    """The `_meta` of a request sent on behalf of an MCP task (2025-11-25)."""
    if task_id is None:
        return None
    related = RelatedTaskMetadata(task_id=task_id).model_dump(by_alias=True)
    return cast(RequestParamsMeta, {RELATED_TASK: related})


@dataclass
class _Binding:
    session: Any  # the ServerSession of the client's last call about the run
    back_channel: bool
    task_id: str | None = None  # the MCP task the run follows for that client, if any


@dataclass
class _Parked:
    request: SamplingRequest
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: SamplingReply | None = None
    error: str | None = None


class SamplingBroker:
    def __init__(self) -> None:
        self.bindings: dict[str, _Binding] = {}
        self.parked: dict[str, dict[str, _Parked]] = {}
        self.sent: dict[str, int] = {}  # run id -> requests sent to its client, unanswered
        # set (and replaced) when a request is sent or answered: a task's status follows it
        # (tools/tasks.py); a workflow_status long-poll does not wake for it
        self.moved = anyio.Event()
        # Told when a request is parked: a tool call waiting on the run must see it at once,
        # not at its next step event (there may be none until the request is answered).
        self.on_parked: Callable[[str], None] = lambda run_id: None

    def bind(self, run_id: str, ctx: Context[Any, Any], task_id: str | None = None) -> None:
        """The client of this call is now the one the run samples from (`task_id`: the MCP
        task it follows the run by, named in the requests). One that declared no sampling
        capability cannot answer: the run's sampling requests fail at once, the parked ones
        too, rather than wait out their step's timeout for a reply that cannot come."""
        if client_can_sample(ctx):
            session, before = ctx.session, self.bindings.get(run_id)
            if task_id is None and before is not None and before.session is session:
                task_id = before.task_id  # the same client, still following its task
            self.bindings[run_id] = _Binding(session, bool(session.can_send_request), task_id)
            return
        self.bindings.pop(run_id, None)
        for parked in self.parked.get(run_id, {}).values():
            if not parked.done.is_set():
                parked.error = NO_SAMPLING
                parked.done.set()

    def forget(self, run_id: str) -> None:
        """The run stopped executing: drop its client (a resume binds one again)."""
        self.bindings.pop(run_id, None)

    def pending(self, run_id: str) -> list[SamplingRequest]:
        return [p.request for p in self.parked.get(run_id, {}).values() if not p.done.is_set()]

    def _moved(self) -> None:
        self.moved.set()
        self.moved = anyio.Event()

    def asking(self, run_id: str) -> int:
        """Requests sent to the run's client (back-channel) that it has not answered yet."""
        return self.sent.get(run_id, 0)

    def answer(self, run_id: str, step_id: str, result: CreateMessageResult) -> None:
        parked = self.parked.get(run_id, {}).get(step_id)
        if parked is None or parked.done.is_set():
            return  # the step timed out or was cancelled meanwhile
        try:
            parked.reply = reply_of(result)
        except StepError as exc:
            parked.error = str(exc)
        parked.done.set()

    async def __call__(self, request: SamplingRequest) -> SamplingReply:
        req = request
        binding = self.bindings.get(req.run_id)
        if binding is None:
            raise StepError(NO_SAMPLING, retryable=False, kind=StepErrorKind.SAMPLING)
        if binding.back_channel:
            return await self._send(binding, req)
        parked = self.parked.setdefault(req.run_id, {})[req.step_id] = _Parked(req)
        self.on_parked(req.run_id)
        try:
            await parked.done.wait()
        finally:
            del self.parked[req.run_id][req.step_id]
        if parked.error or parked.reply is None:
            raise StepError(
                parked.error or "no reply", retryable=False, kind=StepErrorKind.SAMPLING
            )
        return parked.reply

    async def _send(self, binding: _Binding, req: SamplingRequest) -> SamplingReply:
        params = sample_params(req)
        params.meta = related_task(binding.task_id)
        request = CreateMessageRequest(params=params)
        self.sent[req.run_id] = self.sent.get(req.run_id, 0) + 1
        self._moved()
        try:
            result = await binding.session.send_request(request, CreateMessageResult)
        except NoBackChannelError:
            raise StepError(
                "the client's connection has no back-channel for sampling; call workflow_status "
                "to answer the step's request",
                kind=StepErrorKind.SAMPLING,
            ) from None
        except MCPError as exc:
            raise StepError(
                f"the client refused the sampling request: {exc.error.message}",
                kind=StepErrorKind.SAMPLING,
            ) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            raise StepError(
                "the client that was sampled for this run has disconnected; resume the run "
                "(workflow_resume) from a client that offers sampling",
                retryable=False,
                kind=StepErrorKind.SAMPLING,
            ) from None
        finally:
            left = self.sent[req.run_id] = self.sent[req.run_id] - 1
            if not left:
                del self.sent[req.run_id]
            self._moved()
        return reply_of(result)
