"""The commands on runs: run, resume, runs, show, complete, prune. Each opens the database
(or, for a spec with `state_persistence: false`, an in-memory store), builds the engine
these settings allow, and prints through server/cli_output.py."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from rich.table import Table

from tutti_mcp.engine.errors import TuttiError
from tutti_mcp.engine.report import age
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, WorkflowSpec, load_spec_file
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.cli_common import current_run, hint_command
from tutti_mcp.server.cli_output import print_run, print_summary, run_json, short
from tutti_mcp.server.console import err, out, print_table
from tutti_mcp.server.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_WAITING
from tutti_mcp.server.progress import TerminalProgress
from tutti_mcp.server.settings import Settings, build_engine


def exit_code(run: RunRecord) -> int:
    if run.status is RunStatus.SUCCEEDED:
        return EXIT_OK
    return EXIT_WAITING if run.status is RunStatus.WAITING else EXIT_FAILED


def load_spec(args: argparse.Namespace) -> WorkflowSpec:
    """The spec file the user named, held to TUTTI_MAX_SPEC_BYTES / TUTTI_MAX_SPEC_DEPTH."""
    return load_spec_file(args.file, Settings.from_env(db=args.db).spec_limits)


def _parse_inputs(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TuttiError(f"--input takes NAME=VALUE, got {pair!r}")
        values[key] = value
    return values


async def with_engine(
    args: argparse.Namespace,
    fn: Callable[[Engine], Awaitable[int]],
    engine_kw: dict[str, Any] | None = None,
) -> int:
    settings = Settings.from_env(db=args.db)
    kw = dict(engine_kw or {})
    if kw.pop("in_memory", False):  # `optimization.state_persistence: false`
        return await fn(build_engine(settings, InMemoryRunStore(), **kw))
    async with await SqliteRunStore.open(settings.db_path) as store:
        await store.mark_orphans_interrupted()
        return await fn(build_engine(settings, store, memory=AsyncMemoryFiles.of(store), **kw))


async def finish_run(
    args: argparse.Namespace, engine: Engine, run_id: str, resume: bool, stored: bool = True
) -> int:
    progress = TerminalProgress(err, enabled=not args.json)
    with progress:
        if resume:
            run = await engine.resume(run_id, on_event=progress.on_event)
        else:
            run = await engine.execute(run_id, on_event=progress.on_event)
    cmd = hint_command(args)
    if args.json:
        out.print_json(data=run_json(run, cmd))
    elif args.full:
        print_run(run, cmd=cmd)
    else:
        db = Settings.from_env(db=args.db).db_path if stored else None
        print_summary(run, cmd=cmd, db=db)
    return exit_code(run)


def _on_temporal(args: argparse.Namespace) -> bool:
    return Settings.from_env(db=args.db).backend == "temporal"


def cmd_run(args: argparse.Namespace) -> int:
    spec = load_spec(args)
    inputs = _parse_inputs(args.input)
    if _on_temporal(args):
        from tutti_mcp.server import cli_temporal

        return cli_temporal.run(args, spec, inputs)

    async def go(engine: Engine) -> int:
        run_id = await engine.create_run(spec, inputs)
        current_run.append(run_id)
        if not args.json:
            err.print(f"run {run_id} ({spec.name}): {len(spec.steps)} steps")
            if not persist:
                err.print(
                    "state_persistence is false: this run is not stored and cannot be resumed"
                )
        return await finish_run(args, engine, run_id, resume=False, stored=persist)

    persist = spec.optimization.state_persistence
    workspace = Path(args.workspace) if args.workspace else Path(args.file).resolve().parent
    kw: dict[str, Any] = {"shell_allow_all": True, "workspace": workspace, "in_memory": not persist}
    if args.client:
        kw["model_executor"] = ExecutorKind.CLIENT
    return anyio.run(with_engine, args, go, kw)


def cmd_resume(args: argparse.Namespace) -> int:
    if _on_temporal(args):
        from tutti_mcp.server import cli_temporal

        return cli_temporal.resume(args)

    async def go(engine: Engine) -> int:
        if args.workspace:  # shell steps otherwise run where the run was started
            await engine.load(args.run_id)
            await engine.store.set_run(args.run_id, workspace=str(Path(args.workspace).resolve()))
        return await finish_run(args, engine, args.run_id, resume=True)

    return anyio.run(with_engine, args, go, {"shell_allow_all": True})


def cmd_runs(args: argparse.Namespace) -> int:
    if _on_temporal(args):
        from tutti_mcp.server import cli_temporal

        return cli_temporal.list_runs(args, lambda runs: _print_runs(args, runs))

    async def go(engine: Engine) -> int:
        status = RunStatus(args.status) if args.status else None
        return _print_runs(args, await engine.store.list_runs(status, args.limit))

    return anyio.run(with_engine, args, go)


def _print_runs(args: argparse.Namespace, runs: list[RunRecord]) -> int:
    if args.json:
        out.print_json(
            data=[
                {
                    "run_id": r.id,
                    "name": r.name,
                    "status": r.status.value,
                    "created_at": r.created_at,
                    "error": r.error,
                }
                for r in runs
            ]
        )
        return EXIT_OK
    table = Table()
    for col in ("run", "name", "status", "created", "error"):
        table.add_column(col, overflow="fold")
    for r in runs:
        table.add_row(r.id, r.name, r.status.value, age(r.created_at), short(r.error, 60))
    print_table(table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if _on_temporal(args):
        from tutti_mcp.server import cli_temporal

        return cli_temporal.show(args)

    async def go(engine: Engine) -> int:
        run = await engine.load(args.run_id)
        cmd = hint_command(args)
        if args.json:
            out.print_json(data=run_json(run, cmd))
        else:
            print_run(run, cmd=cmd, with_gantt=True, every_output=args.full)
        return EXIT_OK

    return anyio.run(with_engine, args, go)


def cmd_complete(args: argparse.Namespace) -> int:
    if _on_temporal(args):
        from tutti_mcp.server import cli_temporal

        text = None
        if args.error is None:
            text = (
                Path(args.output_file).read_text(encoding="utf-8")
                if args.output_file
                else args.output
            )
        return cli_temporal.complete(args, text)

    async def go(engine: Engine) -> int:
        if args.error is not None:
            await engine.complete_step(args.run_id, args.step_id, error=args.error)
        else:
            text = (
                Path(args.output_file).read_text(encoding="utf-8")
                if args.output_file
                else args.output
            )
            await engine.complete_step(args.run_id, args.step_id, output=text)
        err.print(f"step {args.step_id} of run {args.run_id} completed")
        if args.resume:
            return await finish_run(args, engine, args.run_id, resume=True)
        return EXIT_OK

    return anyio.run(with_engine, args, go, {"shell_allow_all": True})


def cmd_prune(args: argparse.Namespace) -> int:
    async def go(engine: Engine) -> int:
        store = engine.store
        assert isinstance(store, SqliteRunStore)
        n = await store.prune(older_than_s=args.older_than_days * 86400, keep_last=args.keep)
        err.print(f"pruned {n} finished runs older than {args.older_than_days:g} days")
        return EXIT_OK

    return anyio.run(with_engine, args, go)
