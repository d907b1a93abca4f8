"""The `grep` tool's scan, run in a child process (`python -I -S grep_scan.py`, the
request as JSON on stdin, the answer on stdout) so the server can kill it: Python's `re`
holds the GIL while it backtracks, so a pattern like `(a+)+$` in a worker thread would
stall the event loop (measured: 1.8 s for 25 characters, doubling with each one more).
Standard library only, so the child starts in tens of milliseconds.

The scan stays inside `root` (no directory symlinks followed, file symlinks resolved and
checked), skips .git, binary files and files over GREP_FILE_MAX, and stops at
GREP_FILES_MAX files, GREP_TOTAL_MAX bytes or GREP_MATCHES_MAX matches.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

GREP_FILE_MAX = 1 << 20  # larger files are skipped
GREP_TOTAL_MAX = 32 << 20  # bytes read per call
GREP_FILES_MAX = 5000  # files opened per call
GREP_MATCHES_MAX = 200
GREP_LINE_CHARS = 300  # of a matching line, shown
GREP_OUTPUT_MAX = 64 * 1024
SNIFF_BYTES = 8192
SKIP_DIRS = frozenset({".git"})


def scan(root: Path, start: Path, regex: re.Pattern[str], glob: str | None) -> str:
    """`path:line:text` for each matching line, then notes on what was skipped or cut."""
    hits: list[str] = []
    files = total = 0
    notes: list[str] = []
    for path in _files(start):
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
        if b"\0" in data[:SNIFF_BYTES]:
            continue  # binary
        for n, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
            if regex.search(line):
                hits.append(f"{rel}:{n}:{line[:GREP_LINE_CHARS]}")
                if len(hits) >= GREP_MATCHES_MAX:
                    notes.append(f"stopped at {GREP_MATCHES_MAX} matches: narrow the search")
                    return _text(hits, notes)
    return _text(hits, notes) if hits or notes else "no matches"


def _text(hits: list[str], notes: list[str]) -> str:
    data = "\n".join([*hits, *(f"[{n}]" for n in notes[:5])]).encode()
    if len(data) <= GREP_OUTPUT_MAX:
        return data.decode()
    kept = data[:GREP_OUTPUT_MAX].decode(errors="ignore")
    return f"{kept}\n[output cut at {GREP_OUTPUT_MAX} bytes: narrow the search]"


def _files(start: Path) -> Iterator[Path]:
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


def main() -> None:
    req = json.load(sys.stdin)
    regex = re.compile(req["pattern"], re.IGNORECASE if req["ignore_case"] else 0)
    sys.stdout.write(scan(Path(req["root"]), Path(req["start"]), regex, req["glob"]))


if __name__ == "__main__":
    main()
