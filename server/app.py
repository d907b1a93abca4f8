"""The MCP server: `tutti serve`.

The lifespan opens the store, marks runs left `running` by a dead process as
`interrupted`, and owns the task group in which runs execute after the tool call that
started them has returned. Leaving it (the client disconnects, Ctrl-C, SIGTERM) cancels
the runs in flight: each is recorded `interrupted`, with every finished step committed,
and `workflow_resume` continues it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp.server.mcpserver import Context, MCPServer

from tutti_mcp import __version__
from tutti_mcp.engine.executors.gate import GateExecutor
from tutti_mcp.engine.executors.sampling import SamplingExecutor
from tutti_mcp.engine.report import markdown_report
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.supervisor import RunSupervisor
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.memory.runs.tasks import TaskStore
from tutti_mcp.server import prompts
from tutti_mcp.server.settings import Settings, build_engine
from tutti_mcp.server.tasks_ext import LegacyTasks, TasksExtension
from tutti_mcp.server.tasks_notify import TaskListen
from tutti_mcp.tools import memory_mcp
from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.elicitation import GateAsker
from tutti_mcp.tools.errors import resource_errors
from tutti_mcp.tools.sampling import SamplingBroker
from tutti_mcp.tools.schema import compact_tools
from tutti_mcp.tools.tasks import TaskSettings
from tutti_mcp.tools.workflow_mcp import register, state_of

log = logging.getLogger("tutti.server")
CLIENT_POLL_S = 5.0

INSTRUCTIONS = """\
tutti runs multi-step workflows: steps with dependencies run in parallel as soon as their
inputs are ready, every finished step is saved, and interrupted runs resume without
redoing work. Write a spec, check it with workflow_plan, run it with workflow_start, and
follow the `next` field of each answer. Steps handed to you arrive as client_tasks: do
them (in parallel where you can) and report each with step_complete. The memory tools keep
notes under /memories across sessions, with every change kept in memory_history."""


def create_server(settings: Settings | None = None, workspace: Path | None = None) -> MCPServer:
    settings = settings or Settings.from_env()
    root = (workspace or settings.workspace or Path.cwd()).resolve()
    # set by the operator, the workspace is fixed; otherwise a client's roots choose in it
    fixed = "--workspace" if workspace else "TUTTI_WORKSPACE" if settings.workspace else None

    @asynccontextmanager
    async def lifespan(server: MCPServer[Any]) -> AsyncIterator[wfl.ToolState]:
        store = await SqliteRunStore.open(settings.db_path)
        try:
            orphans = await store.mark_orphans_interrupted()
            if orphans:
                log.info("runs left by a stopped process, now interrupted: %s", orphans)
            broker = SamplingBroker()
            asker = GateAsker()  # approval gates, asked by elicitation where offered
            memory_files = AsyncMemoryFiles.of(store)  # shares the store's connection
            engine = build_engine(
                settings,
                store,
                model_executor=settings.default_model_executor,
                workspace=root,
                extra_executors={
                    ExecutorKind.SAMPLING: SamplingExecutor(broker),
                    ExecutorKind.GATE: GateExecutor(asker),
                },
                memory=memory_files,
            )
            # Client tasks are completed in this process (step_complete) and delivered at
            # once; polling the store only catches completions by another process.
            engine.config.client_poll_s = CLIENT_POLL_S

            def forget(run_id: str) -> None:  # the run stopped executing here
                broker.forget(run_id)
                asker.forget(run_id)

            async with anyio.create_task_group() as tg:
                supervisor = await _supervisor(settings, engine, tg, forget)
                broker.on_parked = supervisor.notify
                state = wfl.ToolState(
                    supervisor,
                    broker,
                    root,
                    memory_files,
                    spec_limits=settings.spec_limits,
                    asker=asker,
                    tasks=TaskStore(store.db),
                    workspace_fixed=fixed,
                )
                live.append(state)
                try:
                    yield state
                finally:
                    live.remove(state)
                    tg.cancel_scope.cancel()  # runs in flight end `interrupted`, resumable
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    live: list[wfl.ToolState] = []  # the lifespan's state, for handlers without a Context
    tasks = TasksExtension(
        TaskSettings(ttl_ms=settings.task_ttl_s * 1000 or None, poll_ms=settings.task_poll_ms)
    )
    server: MCPServer[Any] = MCPServer(
        "tutti",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        extensions=[tasks],  # 2026-07-28 tasks (SEP-2663)
        # 2025-11-25 core tasks; 2026-07-28 task notifications on listen streams
        middleware=[LegacyTasks(tasks), TaskListen(settings.task_poll_ms)],
    )
    register(server)
    memory_mcp.register(server)
    compact_tools(server)
    _resources(server, live)
    prompts.register(server)
    return server


async def _supervisor(
    settings: Settings, engine: Engine, tg: TaskGroup, forget: Callable[[str], None]
) -> RunSupervisor:
    """Where runs execute: in this process, or (TUTTI_BACKEND=temporal) on Temporal's
    workers, read and steered from here."""
    if settings.backend != "temporal":
        return RunSupervisor(engine, tg, on_stopped=forget)
    from tutti_mcp.engine.temporal import require_temporalio

    require_temporalio()
    from tutti_mcp.engine.temporal.client import TemporalRuns
    from tutti_mcp.engine.temporal.supervisor import TemporalSupervisor

    t = settings.temporal
    runs = await TemporalRuns.connect(t.address, t.namespace, t.task_queue)
    return TemporalSupervisor(engine, tg, runs)


def _resources(server: MCPServer[Any], live: list[wfl.ToolState]) -> None:
    @server.resource("workflow://runs", mime_type="application/json")
    async def recent_runs() -> str:
        """The 50 most recent runs."""
        listing = await wfl.list_runs(live[-1], None, 50)
        return listing.model_dump_json(indent=1)

    @server.resource("workflow://runs/{run_id}", mime_type="application/json")
    async def run_state(run_id: str, ctx: Context) -> str:
        """A run's state: status, steps, outputs, metrics."""
        with resource_errors():
            res = await wfl.result(state_of(ctx), run_id)
        return json.dumps(res.model_dump(mode="json"), indent=1, default=str)

    @server.resource("workflow://runs/{run_id}/report", mime_type="text/markdown")
    async def run_report(run_id: str, ctx: Context) -> str:
        """A run as Markdown: step table, critical path, speedup, tokens and cost, Gantt."""
        with resource_errors():
            run = await state_of(ctx).supervisor.snapshot(run_id)
        return markdown_report(run)
