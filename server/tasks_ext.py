"""MCP tasks for the tools that start or carry on work (workflow_start, workflow_resume,
step_complete), backed by tutti's durable runs (tools/tasks.py), on both protocol
generations:

- 2025-11-25 core tasks: a `tools/call` with `params.task` is answered with a
  CreateTaskResult; `tasks/get`, `tasks/result`, `tasks/list` and `tasks/cancel` serve it.
  The SDK validates core results against the 2025-11-25 schema, where a tools/call answers
  a CallToolResult, so this generation is served by a middleware (`LegacyTasks`) that also
  advertises the `tasks` capability at `initialize` and `execution.taskSupport` in
  `tools/list`.
- 2026-07-28, the `io.modelcontextprotocol/tasks` extension (SEP-2663), through the SDK's
  extension interface: a tools/call from a client that declares the extension on the request
  is answered with `resultType: "task"`; `tasks/get` (with `pollIntervalMs` and the input
  requests), `tasks/update` (answers to them: step_complete's path) and `tasks/cancel`.

A client that asks for no task sees the tools as they always were."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolRequestParams,
    CallToolResult,
    CreateMessageResult,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    PaginatedRequestParams,
    RequestParams,
    TaskMetadata,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field, ValidationError

from tutti_mcp.engine.errors import TuttiError
from tutti_mcp.memory.runs.tasks import new_task_id
from tutti_mcp.server.tasks_notify import follow_v1_in_background
from tutti_mcp.server.tasks_wire import (
    EXTENSION_ID,
    IMMEDIATE_RESPONSE,
    RUN_ID,
    created_v2,
    declares_extension,
    detailed_v2,
    run_meta,
    task_v1,
    tasks_of,
)
from tutti_mcp.tools import tasks as tsk
from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.sampling import RELATED_TASK
from tutti_mcp.tools.workflow_mcp import binder

TASKS_V1 = "2025-11-25"  # the one handshake version with core tasks
PAGE = 50  # tasks per tasks/list page
# Not past a client's request timeout (~60 s): tasks/result answers within this, finished
# or not (then with an error saying to ask again).
RESULT_WAIT_S = wfl.MAX_WAIT_S
STILL_RUNNING = -32001  # the code SDKs use for a request that timed out


class UpdateTaskParams(RequestParams):
    task_id: str = Field(alias="taskId")
    input_responses: dict[str, dict[str, Any]] = Field(alias="inputResponses")


def _bind(state: wfl.ToolState, ctx: ServerRequestContext[Any, Any], task_id: str) -> Any:
    """The run's sampling steps and gates ask this request's client, on behalf of the task."""
    return binder(state, Context(request_context=ctx), task_id)


def _refusal(exc: TuttiError) -> MCPError:
    if isinstance(exc, tsk.TaskNotFound | tsk.TaskFinished):
        return MCPError(INVALID_PARAMS, str(exc))
    return MCPError(INTERNAL_ERROR, str(exc))


class TasksExtension(Extension):
    identifier = EXTENSION_ID

    def __init__(self, settings: tsk.TaskSettings | None = None) -> None:
        self.config = settings or tsk.TaskSettings()

    def methods(self) -> Sequence[MethodBinding]:
        v1, v2 = frozenset({TASKS_V1}), frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", GetTaskRequestParams, self.get, v1 | v2),
            MethodBinding("tasks/cancel", GetTaskRequestParams, self.cancel, v1 | v2),
            MethodBinding("tasks/result", GetTaskPayloadRequestParams, self.result, v1),
            MethodBinding("tasks/list", PaginatedRequestParams, self.list, v1),
            MethodBinding("tasks/update", UpdateTaskParams, self.update, v2),
        )

    # -- 2026-07-28: tools/call answered with a task -------------------------------------
    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        if (
            params.name not in tsk.TASK_TOOLS
            or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
            or not declares_extension(ctx)
        ):
            return await call_next(ctx)
        state, store = tasks_of(ctx)
        task_id = new_task_id()  # before the run starts: its requests name the task
        token = wfl.AS_TASK.set(task_id)
        try:
            result = await call_next(ctx)
        finally:
            wfl.AS_TASK.reset(token)
        if not isinstance(result, CallToolResult) or result.is_error:
            return result  # refused before it made a run: the refusal is the answer
        answer = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        task = await tsk.create(store, params.name, answer, self.config.ttl_ms, task_id)
        v = await tsk.view(state, store, task.id, extension=True)
        return created_v2(v, self.config.poll_ms)

    # -- the tasks/* methods ---------------------------------------------------------------
    async def get(
        self, ctx: ServerRequestContext[Any, Any], params: GetTaskRequestParams
    ) -> dict[str, Any]:
        state, store = tasks_of(ctx)
        try:
            modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
            bind = _bind(state, ctx, params.task_id)
            v = await tsk.view(state, store, params.task_id, bind=bind, extension=modern)
        except TuttiError as exc:
            raise _refusal(exc) from None
        if modern:
            v = await tsk.with_result(state, v)  # a finished task carries its result here
            return {**detailed_v2(v, self.config.poll_ms), **run_meta(v)}
        return {**task_v1(v, self.config.poll_ms), **run_meta(v)}

    async def cancel(
        self, ctx: ServerRequestContext[Any, Any], params: GetTaskRequestParams
    ) -> dict[str, Any]:
        state, store = tasks_of(ctx)
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        try:
            v = await tsk.cancel(state, store, params.task_id)
        except tsk.TaskFinished as exc:
            if modern:  # cancellation is cooperative there: a finished task is acknowledged
                return {}
            raise _refusal(exc) from None
        except TuttiError as exc:
            raise _refusal(exc) from None
        return {} if modern else task_v1(v, self.config.poll_ms)

    async def result(
        self, ctx: ServerRequestContext[Any, Any], params: GetTaskPayloadRequestParams
    ) -> dict[str, Any]:
        """2025-11-25: the tool result once the task is finished (waiting for it, bounded)."""
        state, store = tasks_of(ctx)
        try:
            v = await tsk.wait_finished(
                state, store, params.task_id, RESULT_WAIT_S, ctx.session.report_progress
            )
            result = (await tsk.with_result(state, v)).result
        except TuttiError as exc:
            raise _refusal(exc) from None
        if not v.status.terminal:
            raise MCPError(
                STILL_RUNNING,
                f"task {v.task.id} is still {v.status.value} after {RESULT_WAIT_S} s "
                f"({v.message}); call tasks/result again, or poll tasks/get",
            )
        if result is None:  # failed outside a tool result: the call's error
            raise MCPError(INTERNAL_ERROR, v.error or v.message)
        return {**result, "_meta": {RELATED_TASK: {"taskId": v.task.id}}}

    async def list(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> dict[str, Any]:
        state, store = tasks_of(ctx)
        views = await tsk.page(state, store, PAGE, _cursor(params.cursor))
        out: dict[str, Any] = {"tasks": [task_v1(v, self.config.poll_ms) for v in views]}
        if len(views) == PAGE:
            last = views[-1].task
            out["nextCursor"] = _encode_cursor(last.created_at, last.id)
        return out

    async def update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams
    ) -> dict[str, Any]:
        """2026-07-28: answers to the task's input requests."""
        state, store = tasks_of(ctx)
        for key, response in params.input_responses.items():  # refuse malformed answers
            if key.startswith("sample:"):
                try:
                    CreateMessageResult.model_validate(response)
                except ValidationError as exc:
                    raise MCPError(
                        INVALID_PARAMS, f"inputResponses[{key!r}] is not a sampling result: {exc}"
                    ) from None
            elif response.get("action") not in ("accept", "decline", "cancel"):
                raise MCPError(
                    INVALID_PARAMS,
                    f"inputResponses[{key!r}] is not an elicitation result: its `action` must "
                    "be accept, decline or cancel",
                )

        def sample(run_id: str, step_id: str, reply: Mapping[str, Any]) -> None:
            state.broker.answer(run_id, step_id, CreateMessageResult.model_validate(reply))

        try:
            await tsk.answer(
                state,
                store,
                params.task_id,
                params.input_responses,
                bind=_bind(state, ctx, params.task_id),
                sample=sample,
            )
        except TuttiError as exc:
            raise _refusal(exc) from None
        return {}


def _encode_cursor(created_at: float, task_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, task_id]).encode()).decode()


def _cursor(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    try:
        created_at, task_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), str(task_id)
    except (ValueError, TypeError) as exc:
        raise MCPError(INVALID_PARAMS, f"invalid tasks/list cursor {cursor!r}: {exc}") from None


class LegacyTasks:
    """2025-11-25 core tasks, as a server middleware (see the module's docstring)."""

    def __init__(self, ext: TasksExtension) -> None:
        self.ext = ext

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "initialize":
            return _with_capability(await call_next(ctx))
        if ctx.protocol_version != TASKS_V1:
            return await call_next(ctx)
        if ctx.method == "tools/list":
            return _with_task_support(await call_next(ctx))
        if ctx.method == "tools/call" and (ctx.params or {}).get("task") is not None:
            return await self._call_as_task(ctx, call_next)
        return await call_next(ctx)

    async def _call_as_task(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> dict[str, Any]:
        params = dict(ctx.params or {})
        raw, name = params.pop("task"), params.get("name")
        if name not in tsk.TASK_TOOLS:
            raise MCPError(
                METHOD_NOT_FOUND,
                f"tool {name!r} does not run as a task: call it without `task` (the tools "
                f"that do: {', '.join(sorted(tsk.TASK_TOOLS))})",
            )
        try:
            meta = TaskMetadata.model_validate(raw)
        except ValidationError as exc:
            raise MCPError(INVALID_PARAMS, f"params.task must be {{ttl?: ms}}: {exc}") from None
        state, store = tasks_of(ctx)
        task_id = new_task_id()  # before the run starts: its requests name the task
        token = wfl.AS_TASK.set(task_id)
        try:
            answer = cast(dict[str, Any], await call_next(replace(ctx, params=params)))
        finally:
            wfl.AS_TASK.reset(token)
        ttl = tsk.granted_ttl(meta.ttl, self.ext.config.ttl_ms)
        task = await tsk.create(store, str(name), answer, ttl, task_id)
        v = await tsk.view(state, store, task.id)
        if task.run_id is not None:  # its status changes are told on this connection
            follow_v1_in_background(state, store, task.id, ctx.session, self.ext.config.poll_ms)
        # 2025-11-25: a task begins `working`, whatever tasks/get says next
        v = replace(
            v, status=tsk.TaskStatus.WORKING, message=f"started; poll tasks/get. {v.message}"
        )
        return {
            "task": task_v1(v, self.ext.config.poll_ms),
            "_meta": {
                IMMEDIATE_RESPONSE: f"Task {task.id} follows it: {v.message}",
                **({RUN_ID: task.run_id} if task.run_id else {}),
            },
        }


def _with_capability(result: HandlerResult) -> HandlerResult:
    if isinstance(result, dict) and result.get("protocolVersion") == TASKS_V1:
        caps = result.setdefault("capabilities", {})
        caps["tasks"] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    return result


def _with_task_support(result: HandlerResult) -> HandlerResult:
    if isinstance(result, dict):
        for tool in result.get("tools") or ():
            if isinstance(tool, dict) and tool.get("name") in tsk.TASK_TOOLS:
                tool["execution"] = {"taskSupport": "optional"}
    return result
