"""Task status notifications and requests sent on behalf of a task, with in-process clients:
2025-11-25 `notifications/tasks/status` on the connection that created the task, 2026-07-28
`notifications/tasks` on a `subscriptions/listen` stream that names the task, and the
related-task `_meta` on the sampling and elicitation requests a task's run sends.
Every wait is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.client.extension import ClientExtension, NotificationBinding
from mcp.shared.exceptions import MCPError
from mcp_types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CreateMessageResult,
    ElicitResult,
    NotificationParams,
    SubscriptionsAcknowledgedNotification,
    TextContent,
)
from pydantic import ConfigDict

from tests.server.mcp_support import ONE_CLIENT_STEP, call, connect
from tests.server.tasks_support import (
    TaskCreated,
    TasksClaim,
    raw,
    request,
    start_task_v1,
    start_task_v2,
)
from tests.server.test_mcp_tasks import GATE

pytestmark = pytest.mark.anyio

RELATED = "io.modelcontextprotocol/related-task"
SAMPLED: dict[str, Any] = {
    "name": "sampled",
    "steps": [{"id": "owl", "prompt": "Say owl.", "run": "sampling"}],
}


class _Params(NotificationParams):
    model_config = ConfigDict(extra="allow")


class Heard(ClientExtension):
    """Collects the notifications of `method` (the SDK's client does not know the tasks
    notifications: an extension's binding receives them)."""

    def __init__(self, identifier: str, method: str) -> None:
        self.identifier = identifier
        self.method = method
        self.send, self.received = anyio.create_memory_object_stream[dict[str, Any]](100)

    def notifications(self) -> list[NotificationBinding[Any]]:
        async def heard(params: _Params) -> None:
            await self.send.send(params.model_dump(by_alias=True, exclude_none=True))

        return [NotificationBinding(method=self.method, params_type=_Params, handler=heard)]

    def __enter__(self) -> Heard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.send.close()
        self.received.close()


class TasksHeard(Heard, TasksClaim):
    """Declares the tasks extension, claims task answers, and hears `notifications/tasks`."""

    def __init__(self) -> None:
        super().__init__("io.modelcontextprotocol/tasks", "notifications/tasks")


async def until_status(
    received: MemoryObjectReceiveStream[dict[str, Any]], status: str, seen: list[str]
) -> dict[str, Any]:
    """Notifications until one says `status` (the caller bounds the wait); each is noted."""
    while True:
        note = await received.receive()
        seen.append(note["status"])
        if note["status"] == status:
            return note


# -- 2025-11-25 ------------------------------------------------------------------------------
async def test_a_legacy_task_tells_its_status_changes_on_the_connection_that_created_it() -> None:
    heard = Heard("com.example/heard", "notifications/tasks/status")
    seen: list[str] = []
    with heard, anyio.fail_after(10):
        async with connect("legacy", extensions=[heard]) as c:
            created = await start_task_v1(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            tid, rid = created["task"]["taskId"], created["_meta"]["tutti/runId"]
            waiting = await until_status(heard.received, "input_required", seen)
            await call(c, "step_complete", run_id=rid, step_id="ask", output="7")
            done = await until_status(heard.received, "completed", seen)
            got = await raw(c, "tasks/get", {"taskId": tid})
    assert seen[0] == "input_required" and seen[-1] == "completed"
    assert set(seen) <= {"working", "input_required", "completed"}
    assert all(a != b for a, b in pairwise(seen))  # changes only
    assert waiting["taskId"] == tid and f"step_complete('{rid}'" in waiting["statusMessage"]
    assert waiting["pollInterval"] > 0 and "pollInterval" not in done
    assert done == got  # what tasks/get says


# -- 2026-07-28 ------------------------------------------------------------------------------
@asynccontextmanager
async def listening(client: Any, task_ids: list[str]) -> AsyncIterator[None]:
    """A `subscriptions/listen` stream naming these tasks, open while inside."""
    async with anyio.create_task_group() as tg:

        async def listen() -> None:
            await request(client, "subscriptions/listen", notifications={"taskIds": task_ids})

        tg.start_soon(listen)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def test_a_listen_stream_naming_a_task_carries_its_status_until_it_is_done() -> None:
    heard = TasksHeard()
    acks: list[Any] = []

    async def messages(message: Any) -> None:
        if isinstance(message, SubscriptionsAcknowledgedNotification):
            acks.append(message.params.notifications.model_dump(by_alias=True))

    seen: list[str] = []
    with heard, anyio.fail_after(10):
        async with connect("auto", extensions=[heard], message_handler=messages) as c:
            created = await start_task_v2(c, "workflow_start", {"spec": ONE_CLIENT_STEP})
            async with listening(c, [created.task_id, "task_unknown"]):
                waiting = await until_status(heard.received, "input_required", seen)
                ((key, _),) = waiting["inputRequests"].items()
                answer = {"action": "accept", "content": {"output": "7"}}
                await request(
                    c, "tasks/update", taskId=created.task_id, inputResponses={key: answer}
                )
                done = await until_status(heard.received, "completed", seen)
            got = await request(c, "tasks/get", taskId=created.task_id)
    assert [a.get("taskIds") for a in acks] == [[created.task_id]]  # the known one only
    assert seen[0] == "input_required" and seen[-1] == "completed"
    assert done["taskId"] == created.task_id
    assert done["result"]["structuredContent"]["outputs"] == {"ask": "7"}
    assert done["result"] == got["result"]  # the DetailedTask tasks/get gives
    # each frame of the stream names it
    assert done["_meta"]["io.modelcontextprotocol/subscriptionId"] is not None


async def test_asking_for_task_notifications_without_the_extension_is_refused() -> None:
    with anyio.fail_after(10):
        async with connect("auto") as c:
            with pytest.raises(MCPError) as err:
                await request(c, "subscriptions/listen", notifications={"taskIds": ["task_x"]})
    assert err.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert "io.modelcontextprotocol/tasks" in err.value.error.message


# -- requests on behalf of a task (2025-11-25) -----------------------------------------------
async def test_a_sampling_request_for_a_task_names_it_and_the_task_waits_on_it() -> None:
    asked: list[Any] = []
    go_on = anyio.Event()
    sampled = anyio.Event()

    async def model(context: Any, params: Any) -> CreateMessageResult:
        asked.append(params.meta)
        sampled.set()
        await go_on.wait()  # the task is input_required meanwhile
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text="owl"), model="m"
        )

    with anyio.fail_after(10):
        async with connect("legacy", sampling_callback=model) as c:
            created = await start_task_v1(c, "workflow_start", {"spec": SAMPLED})
            tid = created["task"]["taskId"]
            await sampled.wait()
            waiting = await raw(c, "tasks/get", {"taskId": tid})
            go_on.set()
            result = await raw(c, "tasks/result", {"taskId": tid})
    assert asked == [{RELATED: {"taskId": tid}}]
    assert waiting["status"] == "input_required"
    assert "sampling/createMessage" in waiting["statusMessage"]
    assert "workflow_status" not in waiting["statusMessage"]
    assert result["structuredContent"]["outputs"] == {"owl": "owl"}


async def test_an_approval_gate_asked_for_a_task_names_it() -> None:
    asked: list[Any] = []

    async def user(context: Any, params: Any) -> ElicitResult:
        asked.append(params.meta)
        return ElicitResult(action="accept", content={"approve": True})

    with anyio.fail_after(10):
        async with connect("legacy", elicitation_callback=user) as c:
            created = await start_task_v1(c, "workflow_start", {"spec": GATE})
            tid = created["task"]["taskId"]
            result = await raw(c, "tasks/result", {"taskId": tid})
    assert asked == [{RELATED: {"taskId": tid}}]
    assert result["structuredContent"]["outputs"]["apply"] == "applied"


async def test_a_parked_sampling_request_of_a_task_is_said_to_be_answered_by_tasks_update() -> None:
    async def model(context: Any, params: Any) -> Any:
        raise AssertionError("the sampling request went around the task")

    with anyio.fail_after(10):
        async with connect("auto", extensions=[TasksClaim()], sampling_callback=model) as c:
            created: TaskCreated = await start_task_v2(c, "workflow_start", {"spec": SAMPLED})
            waiting: dict[str, Any] = {}
            while waiting.get("status") != "input_required":  # until the step has parked
                await anyio.wait_all_tasks_blocked()
                waiting = await request(c, "tasks/get", taskId=created.task_id)
            await request(c, "tasks/cancel", taskId=created.task_id)
    message = waiting["statusMessage"]
    assert "inputRequests" in message and "tasks/update" in message
    assert "workflow_status" not in message
