"""What makes a pipeline durable: the journal commits item rows in batches (every
`every` items, and at least every few hundred milliseconds), with the step's mark, in
one store transaction; and the sinks, whose output a commit covers exactly.

Exactly once at the sink: a JSONL sink's lines are flushed to the file before the commit
that marks their items sunk, and the commit records the file's length. A resume first
cuts the file back to that length, so lines written after the last commit (their items
run again) are not there twice.
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

    def flush(self) -> None:
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
        line = {"item_index": w.index, "item": w.item, "output": w.outs[-1]}
        self.file.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def flush(self) -> None:
        self.file.flush()
        self.offset = self.file.tell()

    def close(self) -> None:
        self.file.close()

    def summary(self) -> dict[str, Any]:
        return {"sink": self.kind, "path": self.rel}


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
    ) -> None:
        self.store, self.run_id, self.step_id = store, run_id, step_id
        self.sink, self.stats, self.keep = sink, stats, keep
        self.pending: dict[int, Work] = {}
        mark = snap.mark
        self.frontier = mark.frontier
        # items at or past the frontier that are finished: it moves past them
        self.finished = {i for i, r in snap.rows.items() if r.state is ItemState.SUNK}
        self.sunk = mark.sunk
        self.dead = 0
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
            self.sink.flush()
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
        return ItemRow(w.index, len(w.outs), ItemState.MOVING, state)


def resumed_work(row: ItemRow) -> Work:
    """An item that an earlier execution left between stages (or dead: re-driven now)."""
    state: Mapping[str, Any] = row.value or {}
    return Work(row.item, state.get("item"), list(state.get("out") or []), state.get("skipped", 0))
