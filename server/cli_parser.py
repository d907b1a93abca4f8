"""The `tutti` command line's parser: every command, option and help text, and which function
carries out each command.

Only argparse is imported here (and nothing of tutti's): `tutti --help` and `--version` must
answer at once, so a command's module, with the engine, the MCP SDK or rich behind it, is
imported by `server.cli` once the command line has named it (`Target`). Values that other
modules define (run statuses, the memory root) are spelled here and checked against them by
tests/server/test_cli_startup.py."""

from __future__ import annotations

import argparse

from tutti_mcp import __version__

# The function that carries out a command: "module:function", imported when it runs.
Target = str
RUN_STATUSES = ("pending", "running", "waiting", "succeeded", "failed", "cancelled", "interrupted")
MEMORY_ROOT = "/memories"  # memory.files.paths.ROOT
MEMORY_GLOBAL = "global"  # memory.files.paths.GLOBAL

_RUNS = "tutti_mcp.server.cli_runs"
_JSON_HELP = "print one JSON object instead of text (default: text)"
_FULL_HELP = "print every output in full instead of a one-screen summary (default: summary)"


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, target: Target, help: str
) -> argparse.ArgumentParser:
    sp = sub.add_parser(name, help=help, description=help)
    sp.set_defaults(target=target)
    # --db after the command too (`tutti runs --db X`); the top-level --db documents it
    sp.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return sp


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tutti", description="Durable, parallel multi-step AI workflows."
    )
    p.add_argument("--db", help="SQLite database file (default: TUTTI_DB or the user data dir)")
    p.add_argument("--version", action="version", version=f"tutti {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _run_commands(sub)
    _add_plan(sub)
    _add_schema(sub)
    _add_serve(sub)
    _add_worker(sub)
    _add_models(sub)
    _add_memory(sub)
    return p


def _run_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """run, resume, runs, show, complete, approve, prune: the commands on runs
    (server/cli_runs.py, server/cli_approve.py)."""
    sp = _add(sub, "run", f"{_RUNS}:cmd_run", "run a workflow file (JSON or YAML)")
    sp.add_argument("file", help="the workflow spec: a JSON or YAML file")
    sp.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for one of the spec's inputs; repeat for more (default: the spec's)",
    )
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)
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
    sp = _add(
        sub,
        "resume",
        f"{_RUNS}:cmd_resume",
        "continue a failed, cancelled, interrupted or waiting run",
    )
    sp.add_argument("run_id", help="the run to continue (`tutti runs` lists them)")
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)
    sp.add_argument("--full", action="store_true", help=_FULL_HELP)
    sp.add_argument(
        "--workspace",
        help="run shell steps here instead of where the run started (default: where it started)",
    )
    sp = _add(sub, "runs", f"{_RUNS}:cmd_runs", "list recent runs")
    sp.add_argument(
        "--status",
        choices=RUN_STATUSES,
        help="list only the runs with this status (default: every status)",
    )
    sp.add_argument(
        "--limit",
        type=int,
        default=20,
        help="list at most this many, newest first (default: %(default)s)",
    )
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)
    sp = _add(
        sub,
        "show",
        f"{_RUNS}:cmd_show",
        "show a run: steps, timings, critical path, speedup, cost, Gantt",
    )
    sp.add_argument("run_id", help="the run to show (`tutti runs` lists them)")
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)
    sp.add_argument(
        "--full",
        action="store_true",
        help="print every step's output in full (default: the final outputs)",
    )
    sp = _add(
        sub,
        "complete",
        f"{_RUNS}:cmd_complete",
        "supply the output of a step waiting for the client",
    )
    sp.add_argument("run_id", help="the waiting run")
    sp.add_argument("step_id", help="the step waiting for you")
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--output", help="the step's output (one of --output, --output-file, --error)")
    g.add_argument("--output-file", help="read the step's output from this UTF-8 file")
    g.add_argument("--error", help="report that the step failed, with this message")
    sp.add_argument(
        "--resume", action="store_true", help="resume the run afterwards (default: do not)"
    )
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)
    sp.add_argument("--full", action="store_true", help=_FULL_HELP + "; with --resume")
    sp = _add(
        sub,
        "approve",
        "tutti_mcp.server.cli_approve:cmd_approve",
        "answer an approval gate of a waiting run, then resume the run",
    )
    sp.add_argument("run_id", help="the waiting run")
    sp.add_argument("step_id", help="the gate (a step with `approve:`) waiting for an answer")
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--yes", dest="approve", action="store_true", help="approve: the run goes on")
    g.add_argument(
        "--no",
        dest="approve",
        action="store_false",
        help="reject: the gate's dependents are skipped and its `on_reject` applies",
    )
    sp.add_argument("--note", help="why, recorded with the answer (default: no note)")
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)
    sp.add_argument("--full", action="store_true", help=_FULL_HELP)
    sp = _add(sub, "prune", f"{_RUNS}:cmd_prune", "delete old finished runs and their checkpoints")
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


def _add_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = _add(
        sub,
        "plan",
        "tutti_mcp.server.cli_plan:cmd_plan",
        "validate a workflow and show its plan",
    )
    sp.add_argument("file", help="the workflow spec: a JSON or YAML file")
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)


def _add_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = _add(
        sub,
        "schema",
        "tutti_mcp.server.cli_schema:cmd_schema",
        "print the JSON Schema of workflow specs, for editors that validate YAML and JSON",
    )
    sp.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write the schema to FILE, replacing it (default: print it on stdout)",
    )


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = _add(
        sub,
        "serve",
        "tutti_mcp.server.cli_serve:cmd_serve",
        "serve the MCP tools (stdio, or --http for streamable HTTP)",
    )
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


def _add_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = _add(
        sub,
        "worker",
        "tutti_mcp.server.cli_worker:cmd_worker",
        "run steps of Temporal-backed runs (TUTTI_BACKEND=temporal), on any machine",
    )
    sp.add_argument(
        "--task-queue", help="the Temporal task queue (default: TUTTI_TEMPORAL_TASK_QUEUE)"
    )
    sp.add_argument(
        "--workspace",
        help="directory shell steps run in on this machine (default: TUTTI_WORKSPACE, else "
        "the directory the run was started in)",
    )


def _add_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = _add(
        sub,
        "models",
        "tutti_mcp.server.models_cli:cmd_models",
        "list models: capabilities, prices, where from",
    )
    sp.add_argument("--json", action="store_true", help=_JSON_HELP)
    sp.add_argument(
        "--table",
        action="store_true",
        help="print what each thinking mode sends to each model, as a Markdown table "
        "(default: the model list)",
    )


def _add_memory(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`tutti memory COMMAND`: each subcommand is a function of server/memory_cli.py."""
    memory = _add(
        sub,
        "memory",
        "tutti_mcp.server.memory_cli:run",
        "view, search, export, import memory",
    )
    msub = memory.add_subparsers(dest="memory_command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = msub.add_parser(name, help=help, description=help)
        p.set_defaults(memory_command=name)
        p.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument(
            "--scope",
            default=MEMORY_GLOBAL,
            help="global, project:<key> or workflow:<name> (default: %(default)s)",
        )
        return p

    p = add("view", "show a memory file with line numbers, or list a directory")
    p.add_argument("path", help="a file or directory, e.g. /memories/notes.md")
    p.add_argument(
        "--range",
        nargs=2,
        type=int,
        metavar=("FIRST", "LAST"),
        help="show only lines FIRST to LAST, counted from 1; LAST -1: to the end "
        "(default: the whole file)",
    )
    p = add("search", 'full-text search: words ANDed, "quoted phrases"')
    p.add_argument("query", help='the words to find, e.g. deploy "release notes"')
    # every scope unless --scope is given
    p.set_defaults(scope=None)
    p.add_argument(
        "--prefix",
        default=MEMORY_ROOT,
        help="only files below this directory (default: %(default)s)",
    )
    p.add_argument(
        "--limit", type=int, default=10, help="show at most this many hits (default: %(default)s)"
    )
    p = add("history", "the revisions of a file or of everything below a directory")
    p.add_argument(
        "path", nargs="?", default=MEMORY_ROOT, help="a file or directory (default: %(default)s)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=50,
        help="show at most this many revisions, newest first (default: %(default)s)",
    )
    p = add("restore", "bring back a revision of a file (also a deleted one)")
    p.add_argument("path", help="the file, e.g. /memories/notes.md")
    p.add_argument("rev", type=int, help="the revision to bring back (`memory history` lists them)")
    p = add("prune", "forget old revisions; files deleted before then are gone for good")
    p.add_argument(
        "--older-than-days",
        type=float,
        required=True,
        metavar="DAYS",
        help="forget revisions older than this many days (required: no default)",
    )
    p = add("export", "write every file of a scope to a directory")
    p.add_argument("dir", help="the directory to write to (created if missing)")
    p = add("import", "store every text file below a directory as /memories/<its path>")
    p.add_argument("dir", help="the directory to read, hidden files left out")
