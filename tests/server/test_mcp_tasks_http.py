"""MCP tasks over streamable HTTP: `tutti serve --http` (a real subprocess on 127.0.0.1)
runs a tool call as a task for the SDK's HTTP client, on both protocol generations: the
task is created, polled with tasks/get (at the interval it suggests) until it is done, and
its result taken (2025-11-25: tasks/result; 2026-07-28: the completed task carries it)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from tests.server.http_support import serving_http
from tests.server.mcp_support import BUILTIN_CHAIN
from tests.server.tasks_support import TasksClaim, raw, request, start_task_v1, start_task_v2
from tests.test_durability import ROOT, cli_env

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="signals")]
POLL_MS = 20
OUTPUT = "<hello world>"


async def test_a_tool_call_runs_as_a_task_over_streamable_http(tmp_path: Path) -> None:
    env = {
        **cli_env(),
        "TUTTI_DB": str(tmp_path / "runs.db"),
        "TUTTI_LOG_LEVEL": "INFO",
        "TUTTI_TASK_POLL_MS": str(POLL_MS),
    }
    with anyio.fail_after(30):
        async with serving_http(env, ROOT) as served:
            async with Client(served.url, mode="legacy") as c:
                created = await start_task_v1(c, "workflow_start", {"spec": BUILTIN_CHAIN})
                tid = created["task"]["taskId"]
                polled = await _poll(lambda: raw(c, "tasks/get", {"taskId": tid}), "ttl")
                result = await raw(c, "tasks/result", {"taskId": tid})
            async with Client(served.url, mode="auto", extensions=[TasksClaim()]) as c:
                task = await start_task_v2(c, "workflow_start", {"spec": BUILTIN_CHAIN})
                done = await _poll(lambda: request(c, "tasks/get", taskId=task.task_id), "ttlMs")
            served.process.send_signal(signal.SIGTERM)
            assert await served.process.wait() == 0
    assert created["task"]["status"] == "working"
    assert polled["status"] == "completed"
    assert result["structuredContent"]["outputs"]["c"] == OUTPUT
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": tid}
    assert done["status"] == "completed"
    assert done["result"]["structuredContent"]["outputs"]["c"] == OUTPUT


async def _poll(get: Any, ttl_key: str) -> dict[str, Any]:
    """tasks/get until the task is terminal, waiting the interval it suggests between polls
    (as a client does; the test's fail_after bounds it)."""
    while True:
        got: dict[str, Any] = await get()
        assert ttl_key in got, got
        if got["status"] in ("completed", "failed", "cancelled"):
            return got
        interval = got.get("pollInterval", got.get("pollIntervalMs"))
        assert interval == POLL_MS, got
        await anyio.sleep(interval / 1000)
