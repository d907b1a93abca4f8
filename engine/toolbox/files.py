"""The workspace tools: `read` (a file's lines), `grep` (a regex over files) and `glob`
(file names). Each stays inside the workspace (relative paths without `..`; symlinks are
resolved and must stay inside: engine.groups), refuses binary files, caps what it reads
and returns, and does its file work in a worker thread so the event loop stays free."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
from pydantic import Field

from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.groups import workspace_glob, workspace_path
from tutti_mcp.engine.toolbox import grep_scan
from tutti_mcp.engine.toolbox.base import (
    OUTPUT_CAP,
    ToolInput,
    ToolUseError,
    custom_tool,
    parse_input,
)
from tutti_mcp.engine.toolbox.grep_scan import GREP_FILE_MAX, GREP_MATCHES_MAX, SKIP_DIRS
from tutti_mcp.engine.toolbox.process import reaped

SNIFF_BYTES = 8192  # a NUL byte in a file's start marks it binary, as git and grep decide
READ_SCAN_MAX = 16 << 20  # bytes of one file `read` goes through to reach `offset`
GREP_TIMEOUT_S = 10.0  # CPU a grep call may use, in its own process
GLOB_MAX = 500


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
    timeout_s: float = GREP_TIMEOUT_S

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
        request = {
            "root": str(self.workspace.resolve()),
            "start": str(start),
            "pattern": regex.pattern,
            "ignore_case": args.ignore_case,
            "glob": args.glob,
        }
        return await _scan(request, self.timeout_s)


async def _scan(request: dict[str, object], timeout_s: float) -> str:
    """grep_scan in a child process, killed after `timeout_s`; its answer is capped
    already, and what is read of it is capped here too."""
    process = await anyio.open_process(
        [sys.executable, "-I", "-S", str(Path(grep_scan.__file__))],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    out = bytearray()
    async with reaped(process):
        with anyio.move_on_after(timeout_s) as scope:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send(json.dumps(request).encode())
            await process.stdin.aclose()
            async for chunk in process.stdout:
                out += chunk[: max(0, 2 * OUTPUT_CAP - len(out))]
            await process.wait()
    if scope.cancelled_caught:
        raise ToolUseError(
            f"grep did not finish within {timeout_s:g}s and was stopped: a pattern "
            "that backtracks (nested repeats such as (a+)+), or too much to search; "
            "simplify the pattern or narrow `path` or `glob`"
        )
    if process.returncode != 0:
        raise ToolUseError(f"grep failed (exit code {process.returncode})")
    return out.decode(errors="replace")


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
