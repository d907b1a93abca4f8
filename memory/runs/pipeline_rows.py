"""What the run store keeps of a pipeline step (engine/modes/pipeline): one row per item
that is between stages, finished or dead, and one mark per pipeline step.

An item's row says how many stages it has completed (`stage`), its state (its item and the
outputs of those stages, as JSON), and whether it reached the sink (`sunk`) or failed a
stage for good (`dead`). Rows are committed in batches; an item that went through several
stages between two commits is written once, at its latest stage. Every item before the
mark's `frontier` reached the sink or is dead: rows of sunk items before it may be pruned,
and a resume knows they are done without them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ItemState(StrEnum):
    MOVING = "moving"  # between stages (or after the last, before the sink)
    SUNK = "sunk"  # reached the sink
    DEAD = "dead"  # failed a stage after its retries (a dead letter)


@dataclass(slots=True)
class ItemRow:
    item: int  # its position in the source
    stage: int  # stages completed (the dead: those before the one it failed)
    state: ItemState
    value: Any = None  # {"item": ..., "out": [outputs of the completed stages]}; None once sunk
    error: str | None = None  # a dead letter's last error
    attempts: int = 0  # a dead letter's attempts at its stage
    pos: int | None = None  # its place in the sink (the output sink reads rows in this order)


@dataclass(slots=True)
class PipelineMark:
    """Where a pipeline step's sink and source stand, and its figures (JSON)."""

    frontier: int = 0  # every item before it is sunk or dead
    sink_offset: int = 0  # bytes of a file sink written by committed items
    sunk: int = 0
    dead: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PipelineSnapshot:
    """A pipeline step as committed: its mark and its rows, by item."""

    mark: PipelineMark
    rows: dict[int, ItemRow]
