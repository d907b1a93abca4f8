"""Task status notifications, on both protocol generations:

- 2025-11-25 `notifications/tasks/status` ("receivers MAY send"): on the connection that
  created the task, for each status change until the task is terminal. It rides the
  connection's standalone channel: stdio's pipe, or the GET stream of a streamable HTTP
  session that opened one (without it the SDK drops the notification; the client polls).
- 2026-07-28, the `io.modelcontextprotocol/tasks` extension (SEP-2663): `notifications/tasks`
  on a `subscriptions/listen` stream whose filter names the tasks (`notifications.taskIds`);
  the acknowledgement lists the task ids accepted, and each notification is the task's
  DetailedTask, as `tasks/get` would answer it then.

The SDK (mcp 2.3.0) serves `subscriptions/listen` itself (mcp/server/subscriptions.py) with a
closed set of events and acknowledges only the core filter keys; an extension cannot bind a
spec method. So a server middleware (`TaskListen`) wraps a listen request that names tasks:
the SDK's handler keeps serving the stream, its acknowledgement gains the accepted task ids,
and the task notifications are sent on the same request stream beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from mcp_types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    Notification,
    NotificationParams,
    ServerNotification,
    SubscriptionsAcknowledgedNotification,
    TaskStatusNotification,
    TaskStatusNotificationParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict

from tutti_mcp.memory.runs.tasks import TaskStore
from tutti_mcp.server.tasks_wire import (
    EXTENSION_ID,
    declares_extension,
    detailed_v2,
    run_meta,
    task_v1,
    tasks_of,
)
from tutti_mcp.tools import tasks as tsk
from tutti_mcp.tools import workflow as wfl

LISTEN = "subscriptions/listen"
TASKS_NOTIFICATION = "notifications/tasks"
MAX_TASKS_PER_LISTEN = 100  # task ids one listen stream may follow


# -- 2025-11-25 ------------------------------------------------------------------------------
async def follow_v1(
    state: wfl.ToolState,
    store: TaskStore,
    task_id: str,
    session: ServerSession,
    poll_ms: int,
) -> None:
    """Send `notifications/tasks/status` on `session`'s connection each time the task's
    status changes, until it is terminal (the CreateTaskResult told `working`)."""
    seen = (tsk.TaskStatus.WORKING, ())
    async for v in tsk.changes(state, store, task_id, seen=seen):
        params = TaskStatusNotificationParams.model_validate({**task_v1(v, poll_ms), **run_meta(v)})
        note = TaskStatusNotification(params=params)
        await session.send_notification(cast(ServerNotification, note))


def follow_v1_in_background(
    state: wfl.ToolState, store: TaskStore, task_id: str, session: ServerSession, poll_ms: int
) -> None:
    """`follow_v1` in the server's task group, for as long as the task's connection lasts."""
    scope = anyio.CancelScope()

    async def follow() -> None:
        with scope:
            await follow_v1(state, store, task_id, session, poll_ms)

    # The SDK offers a handler no public handle on its connection (mcp 2.3.0), whose
    # exit_stack is unwound when the client goes: a session of streamable HTTP ends while
    # the server goes on, and the follower must end with it.
    connection = getattr(session, "_connection", None)
    if connection is not None:
        connection.exit_stack.callback(scope.cancel)
    state.supervisor.tg.start_soon(follow, name=f"task {task_id} notifications")


# -- 2026-07-28 ------------------------------------------------------------------------------
class _Params(NotificationParams):
    model_config = ConfigDict(extra="allow")  # a DetailedTask's fields, as they are


class TasksNotification(Notification[_Params, str]):
    method: str = TASKS_NOTIFICATION
    params: _Params


def _wanted(params: Mapping[str, Any] | None) -> list[str] | None:
    """The task ids a listen request names (None: it names none)."""
    wanted = ((params or {}).get("notifications") or {}).get("taskIds")
    if wanted is None:
        return None
    if not isinstance(wanted, list) or not all(isinstance(t, str) for t in wanted):
        return []  # malformed: no task is followed (the core filter is still served)
    return list(dict.fromkeys(wanted))[:MAX_TASKS_PER_LISTEN]


class _AckNamesTasks:
    """The listen request's session, whose acknowledgement lists the accepted task ids;
    `acked` is set once it is sent (it must be the stream's first frame)."""

    def __init__(self, session: ServerSession, task_ids: list[str]) -> None:
        self._session = session
        self._task_ids = task_ids
        self.acked = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def send_notification(self, notification: Any, related_request_id: Any = None) -> None:
        ack = isinstance(notification, SubscriptionsAcknowledgedNotification)
        if ack:
            params = notification.params.model_dump(by_alias=True, exclude_none=True)
            params["notifications"]["taskIds"] = self._task_ids  # the filter keeps extra keys
            notification = SubscriptionsAcknowledgedNotification.model_validate({"params": params})
        await self._session.send_notification(notification, related_request_id)
        if ack:
            self.acked.set()


class TaskListen:
    """2026-07-28: `notifications/tasks` on the listen streams that ask for them (see the
    module's docstring). A server middleware."""

    def __init__(self, poll_ms: int) -> None:
        self.poll_ms = poll_ms

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != LISTEN or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return await call_next(ctx)
        wanted = _wanted(ctx.params)
        if wanted is None:
            return await call_next(ctx)
        if not declares_extension(ctx):
            raise MCPError(
                MISSING_REQUIRED_CLIENT_CAPABILITY,
                f"notifications.taskIds asks for task notifications: declare the "
                f"{EXTENSION_ID} extension in this request's client capabilities",
                data={"requiredCapabilities": {"extensions": {EXTENSION_ID: {}}}},
            )
        state, store = tasks_of(ctx)
        accepted = [t for t in wanted if await _known(store, t)]
        session = _AckNamesTasks(ctx.session, accepted)
        meta = {SUBSCRIPTION_ID_META_KEY: ctx.request_id}
        async with anyio.create_task_group() as tg:
            for task_id in accepted:
                tg.start_soon(self._push, state, store, task_id, session, meta, ctx.request_id)
            try:
                result = await call_next(replace(ctx, session=cast(ServerSession, session)))
            finally:
                tg.cancel_scope.cancel()
        return result

    async def _push(
        self,
        state: wfl.ToolState,
        store: TaskStore,
        task_id: str,
        session: _AckNamesTasks,
        meta: dict[str, Any],
        request_id: Any,
    ) -> None:
        """The task's state now, then at each change until it is terminal."""
        await session.acked.wait()
        async for v in tsk.changes(state, store, task_id, extension=True):
            v = await tsk.with_result(state, v)
            task = {**detailed_v2(v, self.poll_ms), "_meta": {**_meta_of(v), **meta}}
            note = TasksNotification(params=_Params.model_validate(task))
            await session.send_notification(cast(ServerNotification, note), request_id)


def _meta_of(v: tsk.TaskView) -> dict[str, Any]:
    return dict(run_meta(v).get("_meta", {}))


async def _known(store: TaskStore, task_id: str) -> bool:
    try:
        await tsk.load(store, task_id)
    except tsk.TaskNotFound:
        return False
    return True
