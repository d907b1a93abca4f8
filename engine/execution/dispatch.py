"""Which ready step starts next: within the run's concurrency cap and each executor's own
cap, in the order the core makes steps ready (critical path first). A step whose executor
is at its cap waits in that executor's queue, without holding up steps of other kinds."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.spec import ExecutorKind


@dataclass(frozen=True)
class DispatchStats:
    """A read-out of one run's dispatch, for progress displays and tests."""

    cap: int
    running: int
    running_by_executor: dict[str, int]
    queued_by_executor: dict[str, int]  # ready, held back by their executor's cap
    executor_caps: dict[str, int]


class Dispatch:
    def __init__(
        self,
        core: RunCore,
        kinds: Mapping[str, ExecutorKind],
        cap: int,
        limits: Mapping[ExecutorKind, int],
    ) -> None:
        self.core = core
        self.kinds = kinds
        self.cap = cap
        self.limits = {k: limits.get(k, 1 << 30) for k in ExecutorKind}
        self.running = 0
        self.by_kind = dict.fromkeys(ExecutorKind, 0)
        self.queued: dict[ExecutorKind, deque[str]] = {k: deque() for k in ExecutorKind}
        self.n_queued = 0
        # a `foreach` step's own cap on its instances (steps added at run time)
        self.parent: Mapping[str, str] = {}
        self.group_caps: dict[str, int] = {}
        self.group_running: dict[str, int] = {}
        self.group_queued: dict[str, deque[str]] = {}

    @property
    def has_room(self) -> bool:
        return self.running < self.cap

    @property
    def idle(self) -> bool:
        """Nothing runs, and nothing is queued behind an executor's cap."""
        return self.running == 0 and not self.n_queued

    def take(self) -> tuple[str, str | None] | None:
        """The next step to start (counted as running from now) and, if it is to be
        skipped, why; None when the run is at its cap or no step can start."""
        if self.running >= self.cap or self.core.stop_reason is not None:
            return None
        if self.n_queued:
            for kind, q in self.queued.items():
                if q and self.by_kind[kind] < self.limits[kind]:
                    self.n_queued -= 1
                    return self._started(q.popleft(), None)
            for waiting_group, q in self.group_queued.items():
                if q and self.group_running[waiting_group] < self.group_caps[waiting_group]:
                    self.n_queued -= 1
                    return self._started(q.popleft(), None)
        while self.core.has_ready:
            d = self.core.pop_ready()
            assert d is not None
            sid = d.step_id
            if d.skip_reason is None:
                kind = self.kinds[sid]
                if self.by_kind[kind] >= self.limits[kind]:
                    self.queued[kind].append(sid)
                    self.n_queued += 1
                    continue
                lane = self.parent.get(sid) if self.group_caps else None
                if lane in self.group_caps and self.group_running[lane] >= self.group_caps[lane]:
                    self.group_queued[lane].append(sid)
                    self.n_queued += 1
                    continue
            return self._started(sid, d.skip_reason)
        return None

    def cap_group(self, group: str, cap: int, parent: Mapping[str, str]) -> None:
        """At most `cap` of the steps `parent` maps to `group` run at once."""
        self.parent = parent
        self.group_caps[group] = cap
        self.group_running.setdefault(group, 0)
        self.group_queued.setdefault(group, deque())

    def finished(self, sid: str) -> None:
        self.running -= 1
        self.by_kind[self.kinds[sid]] -= 1
        if self.group_caps and (group := self.parent.get(sid)) in self.group_caps:
            self.group_running[group] -= 1

    @contextmanager
    def held(self) -> Iterator[None]:
        """Count outside work on the run (a client's result being committed) as running,
        so the run is not taken for resting meanwhile."""
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1

    def statistics(self) -> DispatchStats:
        return DispatchStats(
            cap=self.cap,
            running=self.running,
            running_by_executor={k.value: n for k, n in self.by_kind.items() if n},
            queued_by_executor={k.value: len(q) for k, q in self.queued.items() if q},
            executor_caps={k.value: n for k, n in self.limits.items() if n < 1 << 30},
        )

    def _started(self, sid: str, skip: str | None) -> tuple[str, str | None]:
        self.running += 1
        self.by_kind[self.kinds[sid]] += 1
        if self.group_caps and (group := self.parent.get(sid)) in self.group_caps:
            self.group_running[group] += 1
        return sid, skip
