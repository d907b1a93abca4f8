"""What the `tutti` commands share: carrying out the parsed command (its errors become exit
codes and readable messages), the database check, and how suggested commands are spelled."""

from __future__ import annotations

import argparse
import shlex
import sqlite3
from collections.abc import Callable
from contextlib import closing
from importlib import import_module
from pathlib import Path

from tutti_mcp.engine.errors import ConfigurationError, TuttiError
from tutti_mcp.memory.connection import DatabaseOpenError
from tutti_mcp.server.exit_codes import EXIT_INTERRUPTED, EXIT_USAGE
from tutti_mcp.server.hints import command_prefix, spell_hints

Command = Callable[[argparse.Namespace], int]
current_run: list[str] = []  # the run this process started, for the Ctrl-C message


def command_of(args: argparse.Namespace) -> Command:
    """The function the parser named for this command (cli_parser.Target), imported now."""
    module, _, name = str(args.target).partition(":")
    fn: Command = getattr(import_module(module), name)
    return fn


def run_command(args: argparse.Namespace) -> int:
    """Carry out the command; tutti's errors exit 2 with the message, Ctrl-C exits 130 with
    how to resume the run it interrupted."""
    try:
        try:
            return int(command_of(args)(args))
        except DatabaseOpenError as exc:  # by now its connection is closed: we can exit
            raise database_error(exc) from None
    except TuttiError as exc:
        from rich.markup import escape  # rich only when there is something to print

        from tutti_mcp.server.console import err

        # escaped: the message holds file names and spec text, which may look like markup
        text = spell_hints(str(exc), hint_command(args))
        err.print(f"[bold red]error:[/bold red] {escape(text)}", markup=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        from tutti_mcp.server.console import err

        run_id = current_run[-1] if current_run else getattr(args, "run_id", None) or "RUN_ID"
        err.print(
            f"interrupted: run {run_id} is recorded as interrupted; "
            f"`{hint_command(args)} resume {run_id}` continues it",
            markup=False,
        )
        return EXIT_INTERRUPTED


def hint_command(args: argparse.Namespace) -> str:
    """How the commands this one suggests are typed: as it was started, with its --db."""
    db = getattr(args, "db", None)
    return command_prefix() + ("" if db is None else f" --db {shlex.quote(db)}")


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
