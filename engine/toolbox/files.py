"""The workspace tools: `read` (a file's lines), `grep` (a regex over files) and `glob`
(file names). Each stays inside the workspace (relative paths without `..`; symlinks are
resolved and must stay inside: engine.groups), refuses binary files, caps what it reads
and returns, and does its file work in a worker thread so the event loop stays free."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import anyio
from pydantic import Field

from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.groups import workspace_glob, workspace_path
from tutti_mcp.engine.toolbox.base import (
    OUTPUT_CAP,
    ToolInput,
    ToolUseError,
    capped,
    custom_tool,
    parse_input,
)

SNIFF_BYTES = 8192  # a NUL byte in a file's start marks it binary, as git and grep decide
READ_SCAN_MAX = 16 << 20  # bytes of one file `read` goes through to reach `offset`
GREP_FILE_MAX = 1 << 20  # larger files are skipped by grep
GREP_TOTAL_MAX = 32 << 20  # bytes grep reads per call
GREP_FILES_MAX = 5000  # files grep opens per call
GREP_MATCHES_MAX = 200
GREP_LINE_CHARS = 300  # of a matching line, shown
GLOB_MAX = 500
SKIP_DIRS = frozenset({".git"})


def _inside(workspace: Path, rel: str, what: str) -> Path:
    try:
        return workspace_path(workspace, rel, what)
    except StepError as exc:
        raise ToolUseError(f"{exc}; give a path relative to the workspace root") from None


def _binary(head: bytes) -> bool:
    return b"\0" in head[:SNIFF_BYTES]


# -- read ---------------------------------------------------------------------------------
class ReadInput(ToolInput):
    path: str = Field(min_length=1, description="file path relative to the workspace root")
    offset: int = Field(1, ge=1, description="first line to return (1-based)")
    limit: int = Field(2000, ge=1, le=10_000, description="most lines to return")


@dataclass(frozen=True)
class ReadTool:
    workspace: Path
    name: str = "read"

    def definition(self) -> dict[str, object]:
        return custom_tool(
            self.name,
            "Read a text file of the workspace: its lines, numbered, from `offset` (1-based), "
            f"at most `limit` lines and {OUTPUT_CAP // 1024} KiB per call.",
            ReadInput,
        )

    async def run(self, raw: object) -> str:
        args = parse_input(self.name, ReadInput, raw)
        path = _inside(self.workspace, args.path, "read: path")
        return await anyio.to_thread.run_sync(_read, path, args)


def _read(path: Path, args: ReadInput) -> str:
    if not path.is_file():
        raise ToolUseError(f"{args.path!r} is not a file in the workspace (use glob to find one)")
    try:
        out = _numbered(path, args)
    except OSError as exc:
        raise ToolUseError(f"cannot read {args.path!r}: {exc.strerror}") from None
    if not out:
        return (
            f"{args.path!r} has no line {args.offset}: it has fewer lines, or that line lies "
            f"beyond the first {READ_SCAN_MAX >> 20} MiB, as far as read goes (grep for it)"
        )
    return "\n".join(out)


def _numbered(path: Path, args: ReadInput) -> list[str]:
    out: list[str] = []
    size = 0
    with path.open("rb") as f:
        if _binary(f.read(SNIFF_BYTES)):
            raise ToolUseError(f"{args.path!r} is a binary file; read reads text files only")
        f.seek(0)
        for n, raw in enumerate(_lines(f), start=1):
            if n < args.offset:
                continue
            entry = f"{n:6}\t{raw.decode(errors='replace').rstrip(chr(13) + chr(10))}"
            size += len(entry.encode()) + 1
            if size > OUTPUT_CAP:
                out.append(f"[cut at {OUTPUT_CAP} bytes: continue with offset={n}]")
                break
            out.append(entry)
            if len(out) >= args.limit:
                break
    return out


def _lines(f: BinaryIO) -> Iterator[bytes]:
    """The file's lines, each cut to OUTPUT_CAP bytes (the rest of a longer line is read
    and dropped), until READ_SCAN_MAX bytes are read: memory stays bounded whatever the
    file holds."""
    scanned = 0
    while scanned < READ_SCAN_MAX:
        line = f.readline(OUTPUT_CAP)
        if not line:
            return
        scanned += len(line)
        rest = line
        while not rest.endswith(b"\n") and len(rest) == OUTPUT_CAP and scanned < READ_SCAN_MAX:
            rest = f.readline(OUTPUT_CAP)  # the same line goes on: skip it
            scanned += len(rest)
        yield line


# -- grep ---------------------------------------------------------------------------------
class GrepInput(ToolInput):
    pattern: str = Field(min_length=1, max_length=1000, description="Python regular expression")
    path: str = Field(".", description="file or directory relative to the workspace root")
    glob: str | None = Field(None, description="only files whose name matches, e.g. *.py")
    ignore_case: bool = False


@dataclass(frozen=True)
class GrepTool:
    workspace: Path
    name: str = "grep"

    def definition(self) -> dict[str, object]:
        return custom_tool(
            self.name,
            "Search the workspace's text files for a Python regular expression; prints "
            f"path:line:text for each matching line (at most {GREP_MATCHES_MAX}). Skips binary "
            f"files, files over {GREP_FILE_MAX >> 20} MiB and .git.",
            GrepInput,
        )

    async def run(self, raw: object) -> str:
        args = parse_input(self.name, GrepInput, raw)
        flags = re.IGNORECASE if args.ignore_case else 0
        try:
            regex = re.compile(args.pattern, flags)
        except re.error as exc:
            raise ToolUseError(f"pattern {args.pattern!r} is not a valid regex: {exc}") from None
        start = _inside(self.workspace, args.path, "grep: path")
        if not start.exists():
            raise ToolUseError(f"{args.path!r} does not exist in the workspace")
        root = self.workspace.resolve()
        return await anyio.to_thread.run_sync(_grep, root, start, regex, args.glob)


def _grep(root: Path, start: Path, regex: re.Pattern[str], glob: str | None) -> str:
    hits: list[str] = []
    files = total = 0
    notes: list[str] = []
    for path in _files(root, start):
        rel = path.relative_to(root).as_posix()
        if glob and not _matches(rel, glob):
            continue
        if files >= GREP_FILES_MAX or total >= GREP_TOTAL_MAX:
            notes.append(
                f"stopped after {files} files / {total >> 20} MiB: narrow `path` or `glob`"
            )
            break
        real = path.resolve()
        if not real.is_relative_to(root) or not real.is_file():
            continue  # a symlink out of the workspace, or to no file
        try:
            with real.open("rb") as f:
                data = f.read(GREP_FILE_MAX + 1)
        except OSError as exc:
            notes.append(f"skipped {rel}: {exc.strerror}")
            continue
        files += 1
        total += len(data)
        if len(data) > GREP_FILE_MAX:
            notes.append(f"skipped {rel}: over {GREP_FILE_MAX >> 20} MiB")
            continue
        if _binary(data):
            continue
        for n, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
            if regex.search(line):
                hits.append(f"{rel}:{n}:{line[:GREP_LINE_CHARS]}")
                if len(hits) >= GREP_MATCHES_MAX:
                    notes.append(f"stopped at {GREP_MATCHES_MAX} matches: narrow the search")
                    return _grep_text(hits, notes)
    return _grep_text(hits, notes) if hits or notes else "no matches"


def _grep_text(hits: list[str], notes: list[str]) -> str:
    return capped("\n".join([*hits, *(f"[{n}]" for n in notes[:5])]))


def _files(root: Path, start: Path) -> Iterator[Path]:
    """Files under `start` in name order, never into .git, never through a directory
    symlink (os.walk does not follow them)."""
    if start.is_file():
        yield start
        return
    for top, dirs, names in os.walk(start):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            yield Path(top, name)


def _matches(rel: str, glob: str) -> bool:
    if "/" in glob:
        return PurePosixPath(rel).match(glob)
    return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], glob)


# -- glob ---------------------------------------------------------------------------------
class GlobInput(ToolInput):
    pattern: str = Field(
        min_length=1, description="glob relative to the workspace root, e.g. src/**/*.py"
    )


@dataclass(frozen=True)
class GlobTool:
    workspace: Path
    name: str = "glob"

    def definition(self) -> dict[str, object]:
        return custom_tool(
            self.name,
            "List the workspace's files matching a glob pattern (** for any depth), sorted, "
            f"at most {GLOB_MAX}; .git is left out.",
            GlobInput,
        )

    async def run(self, raw: object) -> str:
        args = parse_input(self.name, GlobInput, raw)
        try:
            found = await anyio.to_thread.run_sync(self._glob, args.pattern)
        except StepError as exc:
            raise ToolUseError(str(exc)) from None
        except ValueError as exc:  # pathlib refuses some patterns (`**x`, an empty part)
            raise ToolUseError(f"pattern {args.pattern!r}: {exc}") from None
        if not found:
            return f"no files match {args.pattern!r}"
        more = len(found) > GLOB_MAX
        text = "\n".join(found[:GLOB_MAX])
        return f"{text}\n[more than {GLOB_MAX} files: narrow the pattern]" if more else text

    def _glob(self, pattern: str) -> list[str]:
        return workspace_glob(
            pattern, self.workspace, what="glob: pattern", limit=GLOB_MAX + 1, skip=SKIP_DIRS
        )
