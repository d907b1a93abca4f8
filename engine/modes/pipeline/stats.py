"""A pipeline's figures: per stage, items done, skipped, dead, retried and in flight, the
latency of an item's work (p50/p95/p99 from a log-bucket histogram: constant memory,
about 10% resolution), the items waiting in its buffer over time; overall, throughput and
the most items in flight at once. `snapshot()` is plain JSON: it is committed with the
pipeline's mark, shown by workflow_status and sent to progress listeners."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SAMPLES = 60  # queue-depth samples kept per stage (the latest)
_STEPS = 8  # histogram buckets per doubling of latency


class Histogram:
    __slots__ = ("buckets", "count")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0

    def add(self, seconds: float, n: int = 1) -> None:
        if seconds <= 0:
            b = -1_000
        else:
            m, e = math.frexp(seconds)  # seconds = m * 2**e, 0.5 <= m < 1
            b = e * _STEPS + int((m - 0.5) * 2 * _STEPS)
        self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += n

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-quantile, in seconds."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                if b == -1_000:
                    return 0.0
                e, step = divmod(b, _STEPS)
                return math.ldexp(0.5 + (step + 1) / (2 * _STEPS), e)
        raise AssertionError("the ranks add up to the count")


@dataclass
class StageStats:
    id: str
    done: int = 0
    skipped: int = 0
    dead: int = 0
    retries: int = 0
    in_flight: int = 0  # items its workers hold now
    queued: int = 0  # items waiting in its input buffer now
    backoffs: int = 0  # times the whole stage backed off (429 / overloaded)
    waiting: int = 0  # items waiting for the client (a client stage)
    base: int = 0  # items done by earlier executions (counted in `done`, not in the rate)
    latency: Histogram = field(default_factory=Histogram)
    depths: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=SAMPLES))

    def snapshot(self, elapsed: float) -> dict[str, Any]:
        ms = {
            f"p{int(q * 100)}_ms": None if (v := self.latency.quantile(q)) is None else v * 1e3
            for q in (0.5, 0.95, 0.99)
        }
        return {
            "id": self.id,
            "done": self.done,
            "skipped": self.skipped,
            "dead": self.dead,
            "retries": self.retries,
            "in_flight": self.in_flight,
            "queued": self.queued,
            "backoffs": self.backoffs,
            "waiting": self.waiting,
            "items_per_s": round((self.done - self.base) / elapsed, 1) if elapsed > 0 else None,
            "latency": {k: None if v is None else round(v, 3) for k, v in ms.items()},
            "queue_depths": [[round(t, 2), d] for t, d in self.depths],
        }

    def carry(self, before: Mapping[str, Any], *, dead: bool) -> None:
        """Count on from an earlier execution's figures (the last committed): the step
        runs again after each client batch, and its figures are the step's, not the
        execution's. Dead letters are counted afresh when the resume re-drives them."""
        for name in ("done", "skipped", "retries", "backoffs") + (("dead",) if dead else ()):
            value = before.get(name)
            if isinstance(value, int):
                setattr(self, name, value)
        self.base = self.done


class PipelineStats:
    def __init__(self, stages: list[StageStats], limit: int) -> None:
        self.stages = stages
        self.limit = limit  # the bound on items in flight
        self.read = 0  # items taken from the source (this execution)
        self.sunk = 0
        self.dead = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.restored = 0  # items found finished by an earlier execution
        self.sunk_before = 0  # items sunk and dead letters kept from earlier executions
        self.dead_before = 0
        self.started = time.monotonic()

    def sample(self) -> None:
        t = time.monotonic() - self.started
        for s in self.stages:
            s.depths.append((t, s.queued))

    def snapshot(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {
            "read": self.read,
            "sunk": self.sunk,
            "dead": self.dead,
            "restored": self.restored,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "in_flight_bound": self.limit,
            "elapsed_s": round(elapsed, 3),
            "items_per_s": round(self.sunk / elapsed, 1) if elapsed > 0 else None,
            # the step's, over its executions: what progress reports count
            "items": self.sunk_before + self.sunk,
            "items_dead": self.dead_before + self.dead,
            "waiting": sum(s.waiting for s in self.stages),
            "stages": [s.snapshot(elapsed) for s in self.stages],
        }
