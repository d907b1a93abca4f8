"""`tutti worker`: a Temporal worker for tutti runs (TUTTI_BACKEND=temporal).

It re-executes itself with PYTHONHASHSEED=0: a run's workflow may be replayed by any worker
of the queue, and must decide exactly as it did, down to the order of a set."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from tutti_mcp.server.console import err
from tutti_mcp.server.exit_codes import EXIT_OK
from tutti_mcp.server.settings import Settings, build_engine

HASH_SEED = "0"


def cmd_worker(args: argparse.Namespace) -> int:
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        env = {**os.environ, "PYTHONHASHSEED": HASH_SEED}
        argv = [sys.executable, "-m", "tutti_mcp", *sys.argv[1:]]
        os.execve(sys.executable, argv, env)
    from tutti_mcp.engine.temporal import require_temporalio

    require_temporalio()
    settings = Settings.from_env(db=args.db)
    return asyncio.run(_work(settings, args))


async def _work(settings: Settings, args: argparse.Namespace) -> int:
    from tutti_mcp.engine.temporal.client import TemporalRuns
    from tutti_mcp.engine.temporal.worker import new_worker
    from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
    from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

    t = settings.temporal
    queue = args.task_queue or t.task_queue
    runs = await TemporalRuns.connect(t.address, t.namespace, queue)
    workspace = Path(args.workspace) if args.workspace else settings.workspace
    # the worker's own database: the memory files of prompt steps, the Models API cache
    async with await SqliteRunStore.open(settings.db_path) as store:
        engine = build_engine(
            settings, store, memory=AsyncMemoryFiles.of(store), workspace=workspace
        )
        worker = new_worker(
            runs.client,
            queue,
            engine.executors,
            engine.config.models,
            workspace=workspace.resolve() if workspace else None,
            max_concurrency=settings.max_concurrency,
            heartbeat_s=t.heartbeat_s,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.shutdown()))
        shell = ", ".join(sorted(settings.allow_shell)) or "none"
        err.print(
            f"tutti worker on {t.address} namespace {t.namespace} queue {queue} "
            f"(shell programs: {shell}; pid {os.getpid()})",
            markup=False,
        )
        await worker.run()
    return EXIT_OK
