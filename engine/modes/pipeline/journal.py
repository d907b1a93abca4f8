"""What makes a pipeline durable: the journal commits item rows in batches (every
`every` items, and at least every few hundred milliseconds), with the step's mark, in
one store transaction; and the sinks, whose output a commit covers exactly.

Exactly once at the sink: a JSONL sink's lines are flushed to the file before the commit
that marks their items sunk, and the commit records the file's length. A resume first
cuts the file back to that length, so lines written after the last commit (their items
run again) are not there twice. A memory sink does the same with a memory file (through
the memory store: each flush is a revision, authored by the pipeline step).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import anyio

from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.groups import _confined
from tutti_mcp.engine.modes.pipeline.items import Work
from tutti_mcp.engine.modes.pipeline.stats import PipelineStats
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.files.paths import MemoryFileError, MemoryNotFound
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.memory.runs.pipeline_rows import (
    ItemRow,
    ItemState,
    PipelineMark,
    PipelineSnapshot,
)
from tutti_mcp.memory.runs.store import RunStore

COMMIT_EVERY = 500  # item rows per commit, at most (more wait for the commit in flight)


class Sink:
    """Where finished items go. The output sink keeps nothing itself: the committed rows
    hold each item's output, and the step's output is read from them at the end."""

    kind = "output"
    keeps_outputs = True
    offset = 0

    def write(self, w: Work) -> None:
        return None

    async def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def summary(self) -> dict[str, Any]:
        return {"sink": self.kind}


class JsonlSink(Sink):
    """One JSON line per item (`item_index`, `item`, `output`) in a workspace file."""

    kind = "jsonl"
    keeps_outputs = False

    def __init__(self, rel: str, workspace: Path, committed: int) -> None:
        root = _confined(workspace, rel, "sink.jsonl")
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise StepError(f"sink.jsonl {rel!r} leads outside the workspace", retryable=False)
        self.rel = rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file: IO[bytes] = open(path, "ab")  # noqa: SIM115 (closed by close())
            if self.file.seek(0, 2) > committed:  # what the last commit covers, no more
                self.file.truncate(committed)
        except OSError as exc:
            raise StepError(
                f"sink.jsonl cannot write {rel!r} in the workspace: {exc.strerror}",
                retryable=False,
            ) from None
        self.offset = committed

    def write(self, w: Work) -> None:
        self.file.write(json_line(w).encode() + b"\n")

    async def flush(self) -> None:
        self.file.flush()
        self.offset = self.file.tell()

    def close(self) -> None:
        self.file.close()

    def summary(self) -> dict[str, Any]:
        return {"sink": self.kind, "path": self.rel}


def json_line(w: Work) -> str:
    line = {"item_index": w.index, "item": w.item, "output": w.outs[-1]}
    return json.dumps(line, ensure_ascii=False)


class MemorySink(Sink):
    """One JSON line per item in a memory file (`/memories/...`), through the memory store.
    Its offset is the file's length in characters as the last commit left it."""

    kind = "memory"
    keeps_outputs = False

    def __init__(self, files: AsyncMemoryFiles, path: str, scope: str, author: str) -> None:
        self.files, self.path, self.scope, self.author = files, path, scope, author
        self.text = ""
        self.lines: list[str] = []

    async def open(self, committed: int) -> None:
        """Start from what the last commit covers (a new run: an empty file; the file's
        earlier content stays in its revisions)."""
        try:
            text = await self.files.run(MemoryFiles.read, self.path, scope=self.scope)
        except MemoryNotFound:
            text = ""
        except MemoryFileError as exc:
            raise self._error(exc) from None
        self.text = text[:committed]
        self.offset = len(self.text)
        if text != self.text or not text:
            await self._put()

    def write(self, w: Work) -> None:
        self.lines.append(json_line(w) + "\n")

    async def flush(self) -> None:
        if self.lines:
            self.text += "".join(self.lines)
            self.lines.clear()
            await self._put()
            self.offset = len(self.text)

    async def _put(self) -> None:
        try:
            await self.files.run(
                MemoryFiles.put,
                self.path,
                self.text,
                scope=self.scope,
                author=self.author,
                op="pipeline",
            )
        except MemoryFileError as exc:
            raise self._error(exc) from None

    def _error(self, exc: MemoryFileError) -> StepError:
        return StepError(
            f"sink.memory {self.path} (scope {self.scope}): {exc}. A memory sink suits results "
            "of modest size; use `sink: {jsonl: PATH}` (a workspace file) for long streams",
            retryable=False,
        )

    def summary(self) -> dict[str, Any]:
        return {"sink": self.kind, "path": self.path, "scope": self.scope}


class Journal:
    """The pipeline's rows on their way to the store: every item that moved, finished or
    died since the last commit, by position, written once at its latest state."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        step_id: str,
        snap: PipelineSnapshot,
        sink: Sink,
        stats: PipelineStats,
        keep: int,
        *,
        redrive: bool = True,
    ) -> None:
        self.store, self.run_id, self.step_id = store, run_id, step_id
        self.sink, self.stats, self.keep = sink, stats, keep
        self.pending: dict[int, Work] = {}
        mark = snap.mark
        self.frontier = mark.frontier
        # What an earlier execution finished: sunk items, and its dead letters unless this
        # execution re-drives them (a resume after the step failed; not the step running
        # on after a client batch).
        self.done_states = (
            frozenset({ItemState.SUNK}) if redrive else frozenset({ItemState.SUNK, ItemState.DEAD})
        )
        # items at or past the frontier that are finished: it moves past them
        self.finished = {i for i, r in snap.rows.items() if r.state in self.done_states}
        self.sunk = mark.sunk
        self.dead = 0 if redrive else sum(r.state is ItemState.DEAD for r in snap.rows.values())
        stats.sunk_before, stats.dead_before = self.sunk, self.dead
        self._lock = anyio.Lock()
        self._advance()

    def _advance(self) -> None:
        finished, f = self.finished, self.frontier
        while f in finished:
            finished.discard(f)
            f += 1
        self.frontier = f

    # -- what happened ----------------------------------------------------------------------
    def moved(self, w: Work) -> None:
        self.pending[w.index] = w

    def sunk_item(self, w: Work) -> None:
        """The item reached the sink (written there already)."""
        self.sink.write(w)
        self.sunk += 1
        w.pos = self.sunk
        self.pending[w.index] = w
        self.finished.add(w.index)
        self._advance()

    def dead_item(self, w: Work) -> None:
        self.dead += 1
        self.pending[w.index] = w
        self.finished.add(w.index)
        self._advance()

    @property
    def due(self) -> bool:
        return len(self.pending) >= COMMIT_EVERY

    # -- committing -------------------------------------------------------------------------
    async def commit(self) -> None:
        """Commit what happened so far (one store transaction), with the mark."""
        async with self._lock:
            await self.sink.flush()
            rows = [self._row(w) for w in self.pending.values()]
            self.pending.clear()
            mark = PipelineMark(
                self.frontier, self.sink.offset, self.sunk, self.dead, self.stats.snapshot()
            )
            prune = 0 if self.sink.keeps_outputs else max(0, self.frontier - self.keep)
            await self.store.commit_pipeline(self.run_id, self.step_id, rows, mark, prune)

    def _row(self, w: Work) -> ItemRow:
        if w.error is not None:
            state = {"item": w.item, "out": list(w.outs), "skipped": w.skipped}
            return ItemRow(w.index, len(w.outs), ItemState.DEAD, state, w.error, w.attempts)
        if w.pos:
            value = w.outs[-1] if self.sink.keeps_outputs else None
            return ItemRow(w.index, len(w.outs), ItemState.SUNK, value, pos=w.pos)
        state = {"item": w.item, "out": list(w.outs), "skipped": w.skipped}
        return ItemRow(w.index, len(w.outs), ItemState.MOVING, state, attempts=w.attempts)


def resumed_work(row: ItemRow) -> Work:
    """An item that an earlier execution left between stages (or dead: re-driven now).
    A moving item keeps the attempts it made at its stage (a client stage's retries)."""
    state: Mapping[str, Any] = row.value or {}
    work = Work(row.item, state.get("item"), list(state.get("out") or []), state.get("skipped", 0))
    if row.state is ItemState.MOVING:
        work.attempts = row.attempts
    return work
