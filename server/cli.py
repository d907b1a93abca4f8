"""The `tutti` command line: run, plan, resume, runs, show, complete, prune, serve, models.

Spec files named on the command line are read wherever they are: the user who types the
command can read them anyway. (The MCP tools, whose caller is a model, read spec files only
inside the workspace.) Both hold a file to the same limits and give the same clean errors:
`error: workflow spec is invalid ...` naming the file, exit 2."""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
from rich.markup import escape
from rich.table import Table

from tutti_mcp import __version__
from tutti_mcp.engine.errors import ConfigurationError, RunNotFoundError, TuttiError
from tutti_mcp.engine.report import age
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, WorkflowSpec, load_spec_file
from tutti_mcp.memory.connection import DatabaseOpenError
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.runs.history import WorkflowHistory, summarize
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.cli_output import (
    err,
    out,
    print_plan,
    print_run,
    print_summary,
    run_json,
    short,
)
from tutti_mcp.server.hints import command_prefix, spell_hints
from tutti_mcp.server.progress import TerminalProgress
from tutti_mcp.server.settings import Settings, build_engine

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
_current_run: list[str] = []  # for the Ctrl-C message


def exit_code(run: RunRecord) -> int:
    if run.status is RunStatus.SUCCEEDED:
        return EXIT_OK
    return EXIT_WAITING if run.status is RunStatus.WAITING else EXIT_FAILED


def _parse_inputs(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TuttiError(f"--input takes NAME=VALUE, got {pair!r}")
        values[key] = value
    return values


async def _with_engine(
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


def hint_command(args: argparse.Namespace) -> str:
    """How the commands this one suggests are typed: as it was started, with its --db."""
    db = getattr(args, "db", None)
    return command_prefix() + ("" if db is None else f" --db {shlex.quote(db)}")


async def _finish(
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


def _load(args: argparse.Namespace) -> WorkflowSpec:
    """The spec file the user named, held to TUTTI_MAX_SPEC_BYTES / TUTTI_MAX_SPEC_DEPTH."""
    return load_spec_file(args.file, Settings.from_env(db=args.db).spec_limits)


def cmd_run(args: argparse.Namespace) -> int:
    spec = _load(args)
    inputs = _parse_inputs(args.input)

    async def go(engine: Engine) -> int:
        run_id = await engine.create_run(spec, inputs)
        _current_run.append(run_id)
        if not args.json:
            err.print(f"run {run_id} ({spec.name}): {len(spec.steps)} steps")
            if not persist:
                err.print(
                    "state_persistence is false: this run is not stored and cannot be resumed"
                )
        return await _finish(args, engine, run_id, resume=False, stored=persist)

    persist = spec.optimization.state_persistence
    workspace = Path(args.workspace) if args.workspace else Path(args.file).resolve().parent
    kw: dict[str, Any] = {"shell_allow_all": True, "workspace": workspace, "in_memory": not persist}
    if args.client:
        kw["model_executor"] = ExecutorKind.CLIENT
    return anyio.run(_with_engine, args, go, kw)


def cmd_resume(args: argparse.Namespace) -> int:
    async def go(engine: Engine) -> int:
        if args.workspace:  # shell steps otherwise run where the run was started
            await engine.load(args.run_id)
            await engine.store.set_run(args.run_id, workspace=str(Path(args.workspace).resolve()))
        return await _finish(args, engine, args.run_id, resume=True)

    return anyio.run(_with_engine, args, go, {"shell_allow_all": True})


async def _history(db: Path, name: str) -> WorkflowHistory:
    """The workflow's recorded history; none when there is no database yet (planning
    creates none)."""
    if str(db) != ":memory:" and not db.exists():
        return summarize(name, [])
    async with await SqliteRunStore.open(db) as store:
        return await store.workflow_history(name)


def cmd_plan(args: argparse.Namespace) -> int:
    spec = _load(args)
    settings = Settings.from_env(db=args.db)
    from tutti_mcp.engine.plan import make_plan
    from tutti_mcp.engine.workflow import compile_workflow
    from tutti_mcp.server.models_cli import plan_table
    from tutti_mcp.tools.workflow import estimate_source

    history = anyio.run(_history, settings.db_path, spec.name)
    plan = make_plan(compile_workflow(spec), plan_table(settings, spec), history.durations())
    source = {sid: estimate_source(s, history) for sid, s in plan.steps.items()}
    summary = history.summary()
    if args.json:
        data = plan.to_dict()
        for sid, step in data["steps"].items():
            step["estimate_from"] = source[sid]
        out.print_json(data={**data, "history": summary})
        return EXIT_OK
    print_plan(plan, source, summary)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    async def go(engine: Engine) -> int:
        status = RunStatus(args.status) if args.status else None
        runs = await engine.store.list_runs(status, args.limit)
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
        out.print(table)
        return EXIT_OK

    return anyio.run(_with_engine, args, go)


def cmd_show(args: argparse.Namespace) -> int:
    async def go(engine: Engine) -> int:
        run = await engine.load(args.run_id)
        cmd = hint_command(args)
        if args.json:
            out.print_json(data=run_json(run, cmd))
        else:
            print_run(run, cmd=cmd, with_gantt=True, every_output=args.full)
        return EXIT_OK

    return anyio.run(_with_engine, args, go)


def cmd_complete(args: argparse.Namespace) -> int:
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
            return await _finish(args, engine, args.run_id, resume=True)
        return EXIT_OK

    return anyio.run(_with_engine, args, go, {"shell_allow_all": True})


def cmd_prune(args: argparse.Namespace) -> int:
    async def go(engine: Engine) -> int:
        store = engine.store
        assert isinstance(store, SqliteRunStore)
        n = await store.prune(older_than_s=args.older_than_days * 86400, keep_last=args.keep)
        err.print(f"pruned {n} finished runs older than {args.older_than_days:g} days")
        return EXIT_OK

    return anyio.run(_with_engine, args, go)


def check_database(path: Path) -> None:
    """Raise a ConfigurationError that names the file unless the database can be opened."""
    if str(path) == ":memory:":
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA user_version").fetchone()
    except (OSError, sqlite3.Error) as exc:
        raise database_error(DatabaseOpenError(str(path), exc)) from None


def database_error(exc: DatabaseOpenError) -> ConfigurationError:
    return ConfigurationError(f"{exc}; set TUTTI_DB (or --db) to a writable file")


def exposure_warning(host: str) -> str | None:
    """What to say when `tutti serve --http` binds where other machines can reach it."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        loopback = False
    if loopback:
        return None
    return (
        f"serving on {host}: anyone who can reach this port can run workflows (and shell "
        "steps, if allowed). tutti has no authentication; prefer 127.0.0.1 behind a proxy "
        "that adds it."
    )


def endpoint_url(host: str, port: int) -> str:
    """The streamable HTTP endpoint `tutti serve --http` answers at (the SDK's `/mcp`)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/mcp"


def cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import signal

    from tutti_mcp.server.app import create_server

    logging.basicConfig(
        level=os.environ.get("TUTTI_LOG_LEVEL", "WARNING").upper(),
        stream=sys.stderr,
        format="tutti %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings.from_env(db=args.db)
    check_database(settings.db_path)  # fail here, clearly, rather than inside the server
    server = create_server(settings, workspace=Path(args.workspace) if args.workspace else None)
    # SIGTERM takes the Ctrl-C path: runs in flight are recorded interrupted, resumable.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.http:
            warning = exposure_warning(args.host)
            if warning:
                err.print(f"[bold yellow]warning:[/bold yellow] {warning}", markup=True)
            # stdout may be read by whoever started us: say where to connect on stderr
            err.print(f"tutti serving MCP at {endpoint_url(args.host, args.port)}", markup=False)
            server.run("streamable-http", host=args.host, port=args.port)
        else:
            server.run()
    except KeyboardInterrupt:
        # The runs in flight are recorded interrupted by now (the lifespan has exited), but
        # the SDK's stdin reader thread stays blocked until stdin closes: a supervisor that
        # sends SIGTERM without closing it would wait forever. Leave without joining it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tutti", description="Durable, parallel multi-step AI workflows."
    )
    p.add_argument("--db", help="SQLite database file (default: TUTTI_DB or the user data dir)")
    p.add_argument("--version", action="version", version=f"tutti {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        sp.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return sp

    json_help = "print one JSON object instead of text (default: text)"
    full_help = "print every output in full instead of a one-screen summary (default: summary)"
    sp = add("run", cmd_run, "run a workflow file (JSON or YAML)")
    sp.add_argument("file", help="the workflow spec: a JSON or YAML file")
    sp.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for one of the spec's inputs; repeat for more (default: the spec's)",
    )
    sp.add_argument("--json", action="store_true", help=json_help)
    sp.add_argument(
        "--full",
        action="store_true",
        help="print every step in a table, the metrics and the final outputs in full "
        "(default: a one-screen summary)",
    )
    sp.add_argument(
        "--workspace", help="directory shell steps run in (default: the file's directory)"
    )
    sp.add_argument(
        "--client",
        action="store_true",
        help="hand model steps to you instead of the API: the run waits for `tutti complete` "
        "(default: the API)",
    )
    sp = add("plan", cmd_plan, "validate a workflow and show its plan")
    sp.add_argument("file", help="the workflow spec: a JSON or YAML file")
    sp.add_argument("--json", action="store_true", help=json_help)
    sp = add("resume", cmd_resume, "continue a failed, cancelled, interrupted or waiting run")
    sp.add_argument("run_id", help="the run to continue (`tutti runs` lists them)")
    sp.add_argument("--json", action="store_true", help=json_help)
    sp.add_argument("--full", action="store_true", help=full_help)
    sp.add_argument(
        "--workspace",
        help="run shell steps here instead of where the run started (default: where it started)",
    )
    sp = add("runs", cmd_runs, "list recent runs")
    sp.add_argument(
        "--status",
        choices=[s.value for s in RunStatus],
        help="list only the runs with this status (default: every status)",
    )
    sp.add_argument(
        "--limit",
        type=int,
        default=20,
        help="list at most this many, newest first (default: %(default)s)",
    )
    sp.add_argument("--json", action="store_true", help=json_help)
    sp = add("show", cmd_show, "show a run: steps, timings, critical path, speedup, cost, Gantt")
    sp.add_argument("run_id", help="the run to show (`tutti runs` lists them)")
    sp.add_argument("--json", action="store_true", help=json_help)
    sp.add_argument(
        "--full",
        action="store_true",
        help="print every step's output in full (default: the final outputs)",
    )
    sp = add("complete", cmd_complete, "supply the output of a step waiting for the client")
    sp.add_argument("run_id", help="the waiting run")
    sp.add_argument("step_id", help="the step waiting for you")
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--output", help="the step's output (one of --output, --output-file, --error)")
    g.add_argument("--output-file", help="read the step's output from this UTF-8 file")
    g.add_argument("--error", help="report that the step failed, with this message")
    sp.add_argument(
        "--resume", action="store_true", help="resume the run afterwards (default: do not)"
    )
    sp.add_argument("--json", action="store_true", help=json_help)
    sp.add_argument("--full", action="store_true", help=full_help + "; with --resume")
    sp = add("serve", cmd_serve, "serve the MCP tools (stdio, or --http for streamable HTTP)")
    sp.add_argument(
        "--http", action="store_true", help="serve streamable HTTP at /mcp (default: stdio)"
    )
    sp.add_argument(
        "--host", default="127.0.0.1", help="HTTP bind address (default: %(default)s, loopback)"
    )
    sp.add_argument("--port", type=int, default=8765, help="HTTP port (default: %(default)s)")
    sp.add_argument(
        "--workspace",
        help="directory shell steps run in and spec paths are relative to "
        "(default: TUTTI_WORKSPACE or the current directory)",
    )
    sp = add("prune", cmd_prune, "delete old finished runs and their checkpoints")
    sp.add_argument(
        "--older-than-days",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="delete finished runs older than this (default: %(default)g)",
    )
    sp.add_argument(
        "--keep",
        type=int,
        default=0,
        help="keep this many of the newest old runs (default: %(default)s)",
    )
    from tutti_mcp.server import (  # import this module: load them once it is whole
        memory_cli,
        models_cli,
    )

    models_cli.add_arguments(
        add("models", models_cli.cmd_models, "list models: capabilities, prices, where from")
    )

    memory_cli.add_commands(add("memory", memory_cli.run, "view, search, export, import memory"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "db", None) is None:
        args.db = None
    try:
        try:
            return int(args.fn(args))
        except DatabaseOpenError as exc:  # by now its connection is closed: we can exit
            raise database_error(exc) from None
    except (TuttiError, RunNotFoundError) as exc:
        # escaped: the message holds file names and spec text, which may look like markup
        text = spell_hints(str(exc), hint_command(args))
        err.print(f"[bold red]error:[/bold red] {escape(text)}", markup=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        run_id = _current_run[-1] if _current_run else getattr(args, "run_id", None) or "RUN_ID"
        err.print(
            f"interrupted: run {run_id} is recorded as interrupted; "
            f"`{hint_command(args)} resume {run_id}` continues it",
            markup=False,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
