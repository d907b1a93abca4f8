"""A pipeline's items: what flows through the stages (`Work`), what an item's templates
read (`ItemContext`), and where the items come from (the sources, read as a stream so an
endless or very long source costs no more memory than the buffers hold).

Sources reuse engine.groups where foreach has the same thing: a list from a template, the
workspace files of a glob, workspace confinement of paths. A file source (`lines`,
`jsonl`) is read one line at a time; a `command` source runs an allowed program (the
shell policy) and reads its stdout one line at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine.errors import StepError, StepErrorKind, TemplateError
from tutti_mcp.engine.executors.shell_policy import ShellPolicy
from tutti_mcp.engine.groups import _confined, foreach_items
from tutti_mcp.engine.modes.pipeline.spec import Source
from tutti_mcp.engine.spec_foreach import ForEach
from tutti_mcp.engine.templating import render_async

MAX_LINE = 1 << 20  # a source line longer than this is refused (a file that is not lines)


@dataclass(slots=True)
class Work:
    """One item on its way: its position in the source, the item, the outputs of the
    stages it has completed, and which of those it skipped (`when` did not hold)."""

    index: int
    item: Any
    outs: list[Any] = field(default_factory=list)
    skipped: int = 0  # bit i: stage i was skipped
    seq: int = 0  # its place in this execution's stream (ordered output)
    pos: int = 0  # its place in the sink, from 1, once it is there
    error: str | None = None  # set when it failed a stage for good: a dead letter
    attempts: int = 0  # attempts at the stage it is in (or died in)


class ItemContext(Mapping[str, Any]):
    """What a stage's templates read for one item: `item`, `item_index`, the earlier
    stages' results by stage id, and the run's context (inputs, earlier steps) under it."""

    __slots__ = ("ctx", "ids", "work")

    def __init__(self, work: Work, ids: Mapping[str, int], ctx: Mapping[str, Any]) -> None:
        self.work, self.ids, self.ctx = work, ids, ctx

    def __getitem__(self, key: str) -> Any:
        work = self.work
        if key == "item":
            return work.item
        if key == "item_index":
            return work.index
        i = self.ids.get(key)
        if i is not None and i < len(work.outs):
            out = work.outs[i]
            status = "skipped" if work.skipped >> i & 1 else "succeeded"
            return {"output": out, "results": out, "status": status, "error": None}
        return self.ctx[key]

    def __contains__(self, key: object) -> bool:
        if key in ("item", "item_index"):
            return True
        i = self.ids.get(key) if isinstance(key, str) else None
        return (i is not None and i < len(self.work.outs)) or key in self.ctx

    def _local(self) -> Iterator[str]:
        yield "item"
        yield "item_index"
        yield from (k for k, i in self.ids.items() if i < len(self.work.outs))

    def __iter__(self) -> Iterator[str]:
        local = list(self._local())
        yield from local
        yield from (k for k in self.ctx if k not in local)

    def __len__(self) -> int:
        return sum(1 for _ in self)


async def read_source(
    src: Source, ctx: Mapping[str, Any], workspace: Path, policy: ShellPolicy | None
) -> AsyncIterator[Any]:
    """The source's items, in order. Raises StepError saying what is wrong with it."""
    if src.items is not None or src.glob is not None:
        if src.glob is None:
            fe = ForEach(items=src.items)
        else:
            fe = ForEach(glob=await _render(src.glob, ctx, "source.glob"))
        for item in await foreach_items(fe, ctx, workspace, sys.maxsize):
            yield item
    elif src.lines is not None or src.jsonl is not None:
        name = "lines" if src.lines is not None else "jsonl"
        rel = await _render(src.lines or src.jsonl or "", ctx, f"source.{name}")
        async for n, line in _file_lines(rel, workspace, name):
            yield _json_line(line, n, rel) if name == "jsonl" else line
    else:
        assert src.command is not None
        async for line in _command_lines(src.command, ctx, workspace, policy):
            yield line


async def _render(text: str, ctx: Mapping[str, Any], what: str) -> str:
    try:
        return await render_async(text, ctx)
    except TemplateError as exc:
        raise StepError(f"pipeline.{what}: {exc}", retryable=False) from None


def _json_line(line: str, n: int, rel: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise StepError(
            f"source.jsonl {rel!r} line {n}: not JSON ({exc}); each line must be one JSON value",
            retryable=False,
            kind=StepErrorKind.PARSE,
        ) from None


async def _file_lines(rel: str, workspace: Path, name: str) -> AsyncIterator[tuple[int, str]]:
    root = _confined(workspace, rel, f"source.{name}")
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise StepError(f"source.{name} {rel!r} leads outside the workspace", retryable=False)
    try:
        f = await anyio.open_file(path, "rb")
    except OSError as exc:
        raise StepError(
            f"source.{name} cannot read {rel!r} in the workspace: {exc.strerror}",
            retryable=False,
        ) from None
    async with f:
        n, rest = 0, b""
        while chunk := await f.read(1 << 16):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            if len(rest) > MAX_LINE:
                raise StepError(
                    f"source.{name} {rel!r} has a line over {MAX_LINE} bytes", retryable=False
                )
            for raw in lines:
                n += 1
                if text := raw.decode("utf-8", errors="replace").strip():
                    yield n, text
        if text := rest.decode("utf-8", errors="replace").strip():
            yield n + 1, text


async def _command_lines(
    argv: list[str], ctx: Mapping[str, Any], workspace: Path, policy: ShellPolicy | None
) -> AsyncIterator[str]:
    if policy is None:
        raise StepError(
            "source.command runs a program, and shell commands are off here: set "
            "TUTTI_ALLOW_SHELL to the programs to allow (e.g. TUTTI_ALLOW_SHELL=find,ls)",
            retryable=False,
            kind=StepErrorKind.POLICY,
        )
    words = [await _render(a, ctx, f"source.command[{i}]") for i, a in enumerate(argv)]
    why = policy.program_problem(words[0]) if words[0] else "the command is empty"
    if why:
        raise StepError(f"source.command: {why}", retryable=False, kind=StepErrorKind.POLICY)
    root = workspace.resolve()
    program = policy.resolve(words[0], root)
    env = policy.child_env({}, {})
    async with await anyio.open_process(
        [program, *words[1:]],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
        env=env,
        start_new_session=True,
    ) as process:
        assert process.stdout is not None
        rest = b""
        async for chunk in process.stdout:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            if len(rest) > MAX_LINE:
                process.kill()
                raise StepError(f"source.command printed a line over {MAX_LINE} bytes")
            for raw in lines:
                text = raw.decode("utf-8", errors="replace").strip()
                if text:
                    yield text
        if rest.strip():
            yield rest.decode("utf-8", errors="replace").strip()
        code = await process.wait()
    if code != 0:
        raise StepError(
            f"source.command {words[0]} exited with code {code}", kind=StepErrorKind.EXIT_CODE
        )
