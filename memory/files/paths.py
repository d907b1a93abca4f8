"""Memory paths and scopes: what a valid one looks like, and the error that says why not.

A memory path is "/memories" or "/memories/<segment>/...". Paths are normalised the way a
POSIX path is (repeated and trailing slashes collapse); "." and ".." segments, control
characters and oversized paths are refused with an error written for the model that sent
them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from tutti_mcp.memory.errors import TuttiError

ROOT = "/memories"
MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
MAX_DEPTH = 32
MAX_FILE_BYTES = 1_000_000
MAX_LINES = 999_999
LISTING_CAP = 500  # entries in one directory view; the rest are counted, not listed

GLOBAL = "global"
SCOPE_KINDS = ("project", "workflow")
MAX_SCOPE_KEY = 512


class MemoryFileError(TuttiError, ValueError):
    """A memory command that cannot be carried out; the message says what to do instead."""


class MemoryPathError(MemoryFileError):
    pass


class MemoryNotFound(MemoryFileError):
    def __init__(self, path: str, message: str | None = None) -> None:
        super().__init__(message or f"The path {path} does not exist. Please provide a valid path.")
        self.path = path


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = MAX_FILE_BYTES
    max_path_bytes: int = MAX_PATH_BYTES


def _bad_chars(text: str) -> list[str]:
    return sorted({repr(c) for c in text if unicodedata.category(c) == "Cc"})


# Invisible or unencodable: format characters (zero-width, bidi overrides that show a name
# backwards), line and paragraph separators, lone surrogates (not UTF-8 at all).
_HIDDEN = frozenset({"Cf", "Zl", "Zp", "Cs"})


def _segment_problem(seg: str) -> str | None:
    """Why a segment could act as another path once a consumer decodes or folds it (an
    export on Windows, a memory:// URI, NFKC): a backslash, a percent-encoded or look-alike
    '.', '..' or separator, or a character that cannot be seen."""
    if "\\" in seg:
        return "has a backslash; separate directories with /"
    hidden = sorted({f"U+{ord(c):04X}" for c in seg if unicodedata.category(c) in _HIDDEN})
    if hidden:
        return f"has invisible or invalid characters ({', '.join(hidden)}); use printable text"
    for decoded, how in (
        (unquote(seg), "percent-decoded"),
        (unicodedata.normalize("NFKC", seg), "as plain characters"),
    ):
        if decoded != seg and (decoded in (".", "..") or "/" in decoded or "\\" in decoded):
            return f"reads {decoded!r} {how}; name it with plain letters"
    return None


def normalize_path(path: object, limits: Limits = Limits(), *, field: str = "path") -> str:
    """The canonical form of a memory path, or a MemoryPathError saying what is wrong."""
    if not isinstance(path, str):
        raise MemoryPathError(f"`{field}` must be a string like /memories/notes.md")
    if not path.startswith("/"):
        bare = path.lstrip("./")
        hint = "/" + bare if bare.startswith("memories/") else f"/memories/{bare or 'notes.md'}"
        raise MemoryPathError(f"Path must start with /memories, got: {path!r} (e.g. {hint})")
    bad = _bad_chars(path)
    if bad:
        raise MemoryPathError(
            f"Path {path!r} contains control characters ({', '.join(bad)}); use printable text"
        )
    if any(unicodedata.category(c) == "Cs" for c in path):
        raise MemoryPathError(
            f"Path {path!r} is not valid Unicode (a lone surrogate); use UTF-8 text"
        )
    if len(path.encode()) > limits.max_path_bytes:
        raise MemoryPathError(
            f"Path is {len(path.encode())} bytes; at most {limits.max_path_bytes} are allowed"
        )
    segments = [s for s in path.split("/") if s]
    if not segments or segments[0] != "memories":
        raise MemoryPathError(f"Path must start with /memories, got: {path}")
    rest = segments[1:]
    if ".." in rest:
        raise MemoryPathError(f"Path {path} would escape /memories directory ('..' is not allowed)")
    if "." in rest:
        raise MemoryPathError(f"Path {path} has a '.' segment; write the path without it")
    for seg in rest:
        why = _segment_problem(seg)
        if why:
            raise MemoryPathError(f"Path segment {seg!r} {why}")
        if len(seg.encode()) > MAX_SEGMENT_BYTES:
            raise MemoryPathError(
                f"Path segment {seg[:40]!r}... is longer than {MAX_SEGMENT_BYTES} bytes"
            )
    if len(rest) > MAX_DEPTH:
        raise MemoryPathError(f"Path {path} is {len(rest)} levels deep; at most {MAX_DEPTH}")
    return "/".join([ROOT, *rest])


def parent_dirs(path: str) -> list[str]:
    """The directories above `path`, below the root: /memories/a/b/c -> [/memories/a, /memories/a/b]."""
    parts = path.split("/")[2:-1]
    return [f"{ROOT}/{'/'.join(parts[: i + 1])}" for i in range(len(parts))]


def under(path: str) -> tuple[str, str]:
    """A half-open range of strings holding exactly the paths strictly below `path`."""
    return path + "/", path + "0"  # "0" is the character after "/"


def check_content(text: object, path: str, limits: Limits, *, field: str = "file_text") -> str:
    if not isinstance(text, str):
        raise MemoryFileError(f"`{field}` must be a string")
    size = len(text.encode())
    if size > limits.max_file_bytes:
        raise MemoryFileError(
            f"{path} would be {size:,} bytes; a memory file holds at most "
            f"{limits.max_file_bytes:,}: split it into several files"
        )
    if text.count("\n") + 1 > MAX_LINES:
        raise MemoryFileError(f"File {path} exceeds maximum line limit of 999,999 lines.")
    return text


def parse_scope(scope: object) -> str:
    """ "global", "project:<key>" (e.g. the repository path) or "workflow:<name>"."""
    if scope is None or scope == "":
        return GLOBAL
    if not isinstance(scope, str):
        raise MemoryFileError("`scope` must be a string: global, project:<key> or workflow:<name>")
    if scope == GLOBAL:
        return scope
    kind, sep, key = scope.partition(":")
    if not sep or kind not in SCOPE_KINDS:
        raise MemoryFileError(
            f"unknown scope {scope!r}: use global, project:<key> (e.g. project:/home/me/repo) "
            "or workflow:<name>"
        )
    if not key.strip():
        raise MemoryFileError(f"scope {scope!r} needs a key after the colon, e.g. {kind}:my-key")
    if len(key) > MAX_SCOPE_KEY or _bad_chars(key):
        raise MemoryFileError(
            f"the key of scope {kind}: must be printable text of at most {MAX_SCOPE_KEY} characters"
        )
    return scope


def format_size(n: int) -> str:
    """Sizes as the memory tool shows them: 0B, 512B, 1.5K, 3M."""
    if n == 0:
        return "0B"
    units = ["B", "K", "M", "G"]
    i = min((n.bit_length() - 1) // 10, len(units) - 1)
    size = n / (1024**i)
    return f"{int(size)}{units[i]}" if size == int(size) else f"{size:.1f}{units[i]}"


def number_lines(lines: list[str], start: int) -> str:
    return "\n".join(f"{i:>6}\t{line}" for i, line in enumerate(lines, start))


def render_listing(path: str, rows: list[tuple[str, int]]) -> str:
    """A directory view as the memory tool shows it, from the (path, bytes) of every file
    below `path`: entries up to 2 levels deep, hidden ones left out, directories with the
    bytes of the files below them."""
    lo = path + "/"
    sizes: dict[tuple[str, ...], int] = {}  # up to 2 levels deep, dirs summing their files
    dirs: set[tuple[str, ...]] = set()
    total = 0
    for p, size in rows:
        total += size
        parts = tuple(p[len(lo) :].split("/"))
        if parts[0].startswith(".") or (len(parts) > 1 and parts[1].startswith(".")):
            continue
        for depth in (1, 2):
            if len(parts) >= depth:
                key = parts[:depth]
                sizes[key] = sizes.get(key, 0) + size
                if len(parts) > depth:
                    dirs.add(key)
    entries = sorted(sizes)
    lines = [f"{format_size(total)}\t{path}"]
    for key in entries[:LISTING_CAP]:
        name = "/".join(key) + ("/" if key in dirs else "")
        lines.append(f"{format_size(sizes[key])}\t{path}/{name}")
    if len(entries) > LISTING_CAP:
        lines.append(f"... and {len(entries) - LISTING_CAP} more entries: view a subdirectory")
    header = (
        f"Here're the files and directories up to 2 levels deep in {path}, excluding hidden items:"
    )
    return header + "\n" + "\n".join(lines)
