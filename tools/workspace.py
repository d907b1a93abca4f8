"""Which directory a run started over MCP works in (its workspace), and why.

- TUTTI_WORKSPACE (or `tutti serve --workspace`) is set: that directory, always. It
  overrides the client's roots and a spec file's directory.
- Otherwise the server's own directory (where it started) bounds what the client chooses:
  - a spec given as a file path runs in the file's directory, as `tutti run` does. The
    file is found in the client's roots (an absolute path in the root that contains it, a
    relative one in the first root that has it), else in the server's directory;
  - any other spec runs in the client's first root (MCP `roots/list`);
  - without a usable root, in the server's directory.
- Only `file://` roots count that are directories on this machine inside the server's
  directory: a client chooses among what the server would accept anyway, never more
  (shell steps' cwd, workspace files, the agents' file tools are all confined to the
  workspace). Each other root is skipped, and the reason is told.

A client's roots are asked for each call that chooses a workspace, unless the client can
tell the server when they change: then its answer is kept for its connection
(`KnownRoots`) until it says they changed, for at most ROOTS_TTL_S.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.tools.spec_input import confined_spec_path, spec_path


@dataclass(frozen=True)
class Workspace:
    """Where a run works, why there, and (for a spec given as a path) its file."""

    path: Path
    why: str
    spec_file: Path | None = None

    def as_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "why": self.why}


# A client that declares `roots.listChanged` promises to announce changes; the SDKs declare
# it whenever they can answer `roots/list` (mcp 2.3.0's ClientSession does), whether or
# not they ever send the notification. This bounds how stale their roots can get.
ROOTS_TTL_S = 60.0
# A longer answer is used for the call that asked, not kept for the connection.
MAX_KEPT_ROOTS = 100


class KnownRoots:
    """The roots one client connection listed, kept until it says they changed
    (`changed`) or `ttl_s` has passed. `generation` counts the changes: an answer asked
    for before the latest change is not kept (it may be the old list)."""

    def __init__(
        self, ttl_s: float = ROOTS_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.generation = 0
        self._uris: tuple[str, ...] | None = None
        self._at = 0.0

    def get(self) -> list[str] | None:
        """The kept root URIs, None when there are none or they are too old."""
        if self._uris is None or self.clock() - self._at >= self.ttl_s:
            return None
        return list(self._uris)

    def keep(self, uris: Sequence[str], asked_in: int) -> None:
        """Keep the client's answer to a `roots/list` asked in generation `asked_in`."""
        if asked_in == self.generation and len(uris) <= MAX_KEPT_ROOTS:
            self._uris, self._at = tuple(uris), self.clock()

    def changed(self) -> None:
        """The client said its roots changed: ask again next time."""
        self.generation += 1
        self._uris = None


@dataclass(frozen=True)
class Root:
    uri: str
    path: Path  # resolved


def usable_roots(uris: Sequence[str], bound: Path) -> tuple[list[Root], list[str]]:
    """The client's roots that can be a workspace here, in the client's order, and why
    each other one is skipped."""
    usable: list[Root] = []
    skipped: list[str] = []
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            skipped.append(f"{uri} is not a file:// root")
            continue
        if parsed.netloc not in ("", "localhost"):
            skipped.append(f"{uri} names another host ({parsed.netloc})")
            continue
        path = Path(url2pathname(unquote(parsed.path))).resolve()
        if not path.is_dir():
            skipped.append(f"{uri} is not a directory on this machine")
        elif not path.is_relative_to(bound):
            skipped.append(
                f"{uri} is outside the directory the server runs in ({bound}), which bounds "
                "the client's roots: start `tutti serve` in a directory that contains it"
            )
        else:
            usable.append(Root(uri, path))
    return usable, skipped


def _skipped(notes: Sequence[str]) -> str:
    return f" (skipped: {'; '.join(notes)})" if notes else ""


def choose(
    spec: Mapping[str, Any] | str,
    server: Path,
    fixed: str | None,
    roots: Sequence[str] | None,
) -> Workspace:
    """The workspace of a run of `spec` (see the module's docstring). `server`: the
    server's directory (resolved); `fixed`: why it is fixed (the setting that fixed it),
    None when the client may choose; `roots`: the client's root URIs (None: it offers no
    roots). A spec path that cannot be found or leads outside is a SpecError."""
    given = spec_path(spec)
    if fixed is not None:
        why = f"{fixed} is set: it overrides the client's roots and the spec file's directory"
        found = None if given is None else confined_spec_path(given, server)
        return Workspace(server, why, found)
    usable, skipped = usable_roots(roots or (), server)
    if given is not None:
        return _spec_dir(given, server, usable, skipped)
    if usable:
        first = usable[0]
        return Workspace(first.path, f"the client's first root, {first.uri}" + _skipped(skipped))
    why = "the directory the server runs in: " + (
        "the client offers no roots"
        if roots is None
        else "the client lists no roots"
        if not skipped
        else f"none of the client's roots can be used{_skipped(skipped)}"
    )
    return Workspace(server, why)


def _spec_dir(given: str, server: Path, roots: list[Root], skipped: list[str]) -> Workspace:
    """A spec given as a path: it runs in its file's directory, found in a root (or in the
    server's directory)."""
    places = [(r.path, f"the client's root {r.uri}") for r in roots]
    places.append((server, "the directory the server runs in"))
    relative = not Path(given).expanduser().is_absolute()
    for path, name in places:
        target = (path / Path(given).expanduser()).resolve()
        if target.is_relative_to(path) and (target.exists() or not relative):
            found = confined_spec_path(given, path, f"{name}: {path}")
            why = (
                f"the directory of the spec file {given}, in {name}: a spec given as a path "
                "runs where its file is, as `tutti run` does" + _skipped(skipped)
            )
            return Workspace(found.parent, why, found)
    searched = "; ".join(f"{name} ({path})" for path, name in places)
    raise SpecError(
        [
            Problem(
                "spec",
                (
                    f"no spec file at {given!r} in {searched}"
                    if relative
                    else f"the path {given!r} is outside {searched}"
                )
                + ": pass the spec itself as an object, or give a spec file inside one of them",
            )
        ]
    )
