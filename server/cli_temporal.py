"""The run commands on the Temporal backend (TUTTI_BACKEND=temporal): `tutti run` starts
the run on Temporal and follows it (its events, by query) until it ends or waits for the
caller; `show`, `runs`, `complete`, `resume` read and steer runs there. The steps run on
`tutti worker` processes, under their settings."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from tutti_mcp.engine.spec import ExecutorKind, WorkflowSpec
from tutti_mcp.engine.temporal import require_temporalio
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import EventKind, RunRecord
from tutti_mcp.server.cli_common import current_run, hint_command
from tutti_mcp.server.cli_output import print_run, print_summary, run_json
from tutti_mcp.server.console import err, out
from tutti_mcp.server.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_WAITING
from tutti_mcp.server.progress import TerminalProgress
from tutti_mcp.server.settings import Settings, TemporalSettings, build_engine

if TYPE_CHECKING:  # temporalio is imported once the backend is chosen
    from tutti_mcp.engine.temporal.client import TemporalRuns

FOLLOW_EVERY_S = 0.2  # how often a followed run's new events are asked for


def _exit(run: RunRecord) -> int:
    from tutti_mcp.memory.runs.records import RunStatus

    if run.status is RunStatus.SUCCEEDED:
        return EXIT_OK
    return EXIT_WAITING if run.status is RunStatus.WAITING else EXIT_FAILED


async def _with_runs(args: argparse.Namespace, fn: Callable[[TemporalRuns], Awaitable[int]]) -> int:
    require_temporalio()
    from tutti_mcp.engine.temporal.client import TemporalRuns

    t = Settings.from_env(db=args.db).temporal
    runs = await TemporalRuns.connect(t.address, t.namespace, t.task_queue)
    return await fn(runs)


async def follow(runs: TemporalRuns, run_id: str, progress: TerminalProgress) -> RunRecord:
    """Show the run's events as they come, until it ends or only the caller can move it on."""
    seen = 0
    rolls = 0
    while True:
        view = await runs.view(run_id)
        if view.rolls != rolls:  # a new execution numbers its events from 1 again
            seen, rolls = 0, view.rolls
        if view.open:
            for ev in await runs.events(run_id, seen):
                seen = max(seen, ev["seq"])
                progress.on_event(EventKind(ev["kind"]), ev["step_id"], ev["data"] or {})
        if not view.open or view.blocked_on_client:
            return view.record
        await anyio.sleep(FOLLOW_EVERY_S)


def _hint(args: argparse.Namespace) -> str:
    """The commands the output suggests, with the settings that find the run on Temporal:
    typed as printed, they work whether or not the shell exports them."""
    t = Settings.from_env(db=args.db).temporal
    env = ["TUTTI_BACKEND=temporal"]
    for name, value, default in (
        ("TUTTI_TEMPORAL_ADDRESS", t.address, TemporalSettings.address),
        ("TUTTI_TEMPORAL_NAMESPACE", t.namespace, TemporalSettings.namespace),
        ("TUTTI_TEMPORAL_TASK_QUEUE", t.task_queue, TemporalSettings.task_queue),
    ):
        if value != default:
            env.append(f"{name}={shlex.quote(value)}")
    return " ".join(env) + " " + hint_command(args)


def _print(args: argparse.Namespace, run: RunRecord) -> int:
    cmd = _hint(args)
    if args.json:
        out.print_json(data=run_json(run, cmd))
    elif getattr(args, "full", False):
        print_run(run, cmd=cmd)
    else:
        t = Settings.from_env(db=args.db).temporal
        print_summary(run, cmd=cmd, db=f"Temporal at {t.address}, namespace {t.namespace}")
    return _exit(run)


def run(args: argparse.Namespace, spec: WorkflowSpec, inputs: dict[str, Any]) -> int:
    settings = Settings.from_env(db=args.db)
    workspace = Path(args.workspace) if args.workspace else Path(args.file).resolve().parent
    kw: dict[str, Any] = {"workspace": workspace}
    if args.client:
        kw["model_executor"] = ExecutorKind.CLIENT
    engine = build_engine(settings, InMemoryRunStore(), **kw)  # compiles and checks only

    async def go(runs: TemporalRuns) -> int:
        run_id = await runs.start(engine, spec, inputs, str(workspace.resolve()))
        current_run.append(run_id)
        if not args.json:
            err.print(
                f"run {run_id} ({spec.name}): {len(spec.steps)} steps, on Temporal "
                f"({settings.temporal.address}, queue {settings.temporal.task_queue})"
            )
        progress = TerminalProgress(err, enabled=not args.json)
        with progress:
            record = await follow(runs, run_id, progress)
        return _print(args, record)

    return anyio.run(_with_runs, args, go)


def resume(args: argparse.Namespace) -> int:
    """An open run carries on by itself (`resume` follows it); a closed one that did not
    succeed runs again under its id from the steps it committed."""

    async def go(runs: TemporalRuns) -> int:
        from tutti_mcp.engine.temporal import reruns

        view = await runs.view(args.run_id)
        if not view.open:
            await reruns.resume(runs, args.run_id)
        progress = TerminalProgress(err, enabled=not args.json)
        with progress:
            record = await follow(runs, args.run_id, progress)
        return _print(args, record)

    return anyio.run(_with_runs, args, go)


def show(args: argparse.Namespace) -> int:
    async def go(runs: TemporalRuns) -> int:
        record = await runs.record(args.run_id)
        cmd = _hint(args)
        if args.json:
            out.print_json(data=run_json(record, cmd))
        else:
            print_run(record, cmd=cmd, with_gantt=True, every_output=args.full)
        return EXIT_OK

    return anyio.run(_with_runs, args, go)


def list_runs(args: argparse.Namespace, render: Callable[[list[RunRecord]], int]) -> int:
    from tutti_mcp.memory.runs.records import RunStatus

    async def go(runs: TemporalRuns) -> int:
        status = RunStatus(args.status) if args.status else None
        return render(await runs.list_runs(status, args.limit))

    return anyio.run(_with_runs, args, go)


def complete(args: argparse.Namespace, output: Any, done: str = "completed") -> int:
    """A client step's result or a gate's answer: an update to the run's workflow, which
    carries on at once on the workers."""

    async def go(runs: TemporalRuns) -> int:
        await runs.complete(args.run_id, args.step_id, output, getattr(args, "error", None))
        err.print(f"step {args.step_id} of run {args.run_id} {done}")
        if getattr(args, "resume", True):
            progress = TerminalProgress(err, enabled=not args.json)
            with progress:
                record = await follow(runs, args.run_id, progress)
            return _print(args, record)
        return EXIT_OK

    return anyio.run(_with_runs, args, go)
