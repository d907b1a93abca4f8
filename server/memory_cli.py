"""`tutti memory ...`: view, search, history, restore, export and import memory files, on
the database the server uses (TUTTI_DB or --db), through the synchronous store. The
subcommands' arguments are in server/cli_parser.py."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

from rich.markup import escape

from tutti_mcp.engine.errors import TuttiError
from tutti_mcp.memory.files.paths import ROOT, MemoryFileError, parse_scope
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.server.cli_common import check_database
from tutti_mcp.server.console import err
from tutti_mcp.server.exit_codes import EXIT_OK, EXIT_USAGE
from tutti_mcp.server.settings import Settings
from tutti_mcp.tools.memory import iso

Command = Callable[[MemoryFiles, argparse.Namespace], int]
CLI = "cli"
IMPORTER = "cli:import"


def run(args: argparse.Namespace) -> int:
    """Open the database and carry out the subcommand; the store's errors exit with 2."""
    path = Settings.from_env(db=args.db).db_path
    check_database(path)
    fn = COMMANDS[args.memory_command]
    try:
        with closing(MemoryFiles.open(path)) as files:
            return fn(files, args)
    except (MemoryFileError, OSError) as exc:
        # the store's messages hold brackets ([start, end]) that rich would read as markup
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", markup=True)
        return EXIT_USAGE


def cmd_view(files: MemoryFiles, args: argparse.Namespace) -> int:
    print(files.view(args.path, args.range, scope=args.scope))
    return EXIT_OK


def cmd_search(files: MemoryFiles, args: argparse.Namespace) -> int:
    scopes = None if args.scope is None else [args.scope]
    hits = files.search(args.query, scopes=scopes, prefix=args.prefix, limit=args.limit)
    if not hits:
        err.print("no memory file matches: try fewer or other words")
    for h in hits:
        snippet = " ".join(h.snippet.split())
        print(f"{h.scope}\t{h.path}\t{h.score:.4g}\n    {snippet}")
    return EXIT_OK


def cmd_history(files: MemoryFiles, args: argparse.Namespace) -> int:
    revs = files.history(args.path, scope=args.scope, limit=args.limit)
    if not revs:
        err.print(f"no revisions at {args.path} in scope {parse_scope(args.scope)}")
    for r in revs:
        size = "deleted" if r.size is None else f"{r.size}B"
        detail = f"\t{r.detail}" if r.detail else ""
        print(f"{r.path}\trev {r.rev}\t{r.op}\t{r.author}\t{iso(r.at)}\t{size}{detail}")
    return EXIT_OK


def cmd_restore(files: MemoryFiles, args: argparse.Namespace) -> int:
    print(files.restore(args.path, args.rev, scope=args.scope, author=CLI))
    return EXIT_OK


def cmd_prune(files: MemoryFiles, args: argparse.Namespace) -> int:
    if args.older_than_days < 0:
        raise MemoryFileError("--older-than-days must be 0 or more")
    n = files.prune(args.older_than_days * 86_400)
    print(
        f"forgot {n} revisions older than {args.older_than_days:g} days; "
        "every file's current text is kept"
    )
    return EXIT_OK


def cmd_export(files: MemoryFiles, args: argparse.Namespace) -> int:
    target = Path(args.dir)
    listed = files.files(scope=args.scope)
    total = 0
    for info in listed:
        dest = target.joinpath(*info.path.split("/")[2:])
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(files.read(info.path, scope=info.scope), encoding="utf-8", newline="")
        total += info.size
    scope = parse_scope(args.scope)
    print(f"exported {len(listed)} files ({total} bytes) of scope {scope} to {target}")
    return EXIT_OK


def _walk(root: Path) -> Iterator[Path]:
    """The files below `root` in name order, hidden files and directories left out."""
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(here, name)


def cmd_import(files: MemoryFiles, args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        raise TuttiError(f"{root} is not a directory: give the directory to import")
    scope = parse_scope(args.scope)
    existing = {f.path for f in files.files(scope=scope)}
    counts = {"created": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    for file in _walk(root):
        rel = file.relative_to(root).as_posix()
        why = _unimportable(file, files.limits.max_file_bytes)
        text = None
        if why is None:
            try:
                text = file.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                why = "not UTF-8 text"
        if text is not None:
            path = f"{ROOT}/{rel}"
            try:
                changed = files.put(path, text, scope=scope, author=IMPORTER)
            except MemoryFileError as exc:
                why = str(exc)
            else:
                kind = "unchanged" if not changed else "updated" if path in existing else "created"
                counts[kind] += 1
                continue
        counts["skipped"] += 1
        err.print(f"[yellow]skipped[/yellow] {escape(rel)}: {escape(why or '')}", markup=True)
    print(", ".join(f"{n} {k}" for k, n in counts.items()) + f" (scope {scope})")
    return EXIT_OK


def _unimportable(file: Path, max_bytes: int) -> str | None:
    """Why a file cannot be a memory file, judged before reading it as text."""
    if file.is_symlink() or not file.is_file():
        return "not a regular file"
    size = file.stat().st_size
    if size > max_bytes:
        return f"{size:,} bytes; a memory file holds at most {max_bytes:,}"
    with file.open("rb") as f:
        if b"\0" in f.read(8192):
            return "binary"
    return None


COMMANDS: dict[str, Command] = {
    "view": cmd_view,
    "search": cmd_search,
    "history": cmd_history,
    "restore": cmd_restore,
    "prune": cmd_prune,
    "export": cmd_export,
    "import": cmd_import,
}

__all__ = ["COMMANDS", "run"]
