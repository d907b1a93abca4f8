"""The deterministic heart of a run: which steps are ready, what a failure means, when the
run is done. No I/O, no clock, no concurrency: the runner feeds it events and asks it
questions, so the same core could drive steps in another durable engine.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from tutti_mcp.engine.spec import FailurePolicy, Trigger
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import StepRecord, StepStatus


class FailureAction(StrEnum):
    STOP_RUN = "stop_run"  # policy fail: no new steps; the run fails
    SKIP_DEPENDENTS = "skip_dependents"  # policy continue
    RUN_FALLBACK = "run_fallback"
    USE_DEFAULT = "use_default"  # policy degrade


@dataclass(frozen=True)
class Decision:
    """What to do with a step the core has made ready."""

    step_id: str
    skip_reason: str | None  # None: run it (its condition, if any, is still to be checked)


class RunCore:
    def __init__(self, wf: Workflow, priority: dict[str, float]) -> None:
        self.wf = wf
        self.status: dict[str, StepStatus] = dict.fromkeys(wf.order, StepStatus.PENDING)
        self.remaining = {sid: len(wf.deps[sid]) for sid in wf.order}
        self.unsatisfied_dep: dict[str, str] = {}  # step -> a dependency that has no output
        self.output_from: dict[str, str] = {}  # failed primary -> fallback whose output stands in
        self.unsettled = sum(1 for sid in wf.order if sid not in wf.fallback_of)
        self.stop_reason: str | None = None
        self._started = False
        self.rejections: dict[str, str] = {}  # rejected gate -> why its dependents are skipped
        self._ready: list[tuple[float, int, str]] = []
        self._queued: set[str] = set()  # ever pushed: a step is made ready at most once
        self._index = {sid: i for i, sid in enumerate(wf.order)}
        self._priority = priority
        # steps that added steps to the run (their instances): made ready again, to collect
        # what those produced, once the last of them settles
        self.expanded: set[str] = set()
        self._collecting: set[str] = set()

    # -- feeding events --------------------------------------------------------------------
    def restore(self, steps: Mapping[str, StepRecord]) -> tuple[list[str], list[str], list[str]]:
        """Resume from stored step records: steps with a checkpoint keep it, everything else
        runs (again). Returns (committed, reported failed by the client while no process
        ran the run: their policy applies now, to reset to pending)."""
        committed = [
            s for s in self.wf.order if steps[s].status.has_output and steps[s].seq is not None
        ]
        for sid in committed:
            self.status[sid] = steps[sid].status
        done = set(committed)
        client_failed = [
            s
            for s in self.wf.order
            if steps[s].status is StepStatus.FAILED and steps[s].reported_by_client
        ]
        # marked before dependencies settle, so that settling does not make them ready again
        for sid in client_failed:
            self.status[sid] = StepStatus.WAITING
        for sid in committed:
            primary = self.wf.fallback_of.get(sid)
            if primary is None:
                self._settle(sid, satisfied=True)
            elif primary not in done:  # the fallback stood in for its failed primary
                self.status[primary] = StepStatus.FAILED
                self.output_from[primary] = sid
                self._settle(primary, satisfied=True)
        reset = [
            s
            for s in self.wf.order
            if s not in done
            and s not in client_failed
            and s not in self.output_from
            and steps[s].status is not StepStatus.PENDING
        ]
        return committed, client_failed, reset

    def add_steps(self, parent: str, added: list[tuple[str, tuple[str, ...]]]) -> None:
        """Steps added to the run at run time, each with the added steps it depends on
        (listed before it); the rest of what they need is their parent's, satisfied
        already. `parent` is made ready again once every one of them settles. The workflow
        (`self.wf`, the run's own copy) already holds their definitions. Before `start()`
        (resuming) nothing is pushed: `restore` and `start` see them like any other step."""
        self.expanded.add(parent)
        self._collecting.discard(parent)
        self.unsatisfied_dep.pop(parent, None)
        wf, status, remaining, index = self.wf, self.status, self.remaining, self._index
        rank = self._priority.get(parent, 0.0)
        dependents: dict[str, list[str]] = {}
        for sid, deps in added:
            status[sid] = StepStatus.PENDING
            remaining[sid] = len(deps)
            index[sid] = len(index)
            self._priority[sid] = rank
            dependents[sid] = []
            for d in deps:
                dependents[d].append(sid)
            wf.order.append(sid)
        for sid, later in dependents.items():
            wf.dependents[sid] = (*later, parent)
        remaining[parent] = remaining.get(parent, 0) + len(added)
        self.unsettled += len(added)
        if self._started:
            for sid, deps in added:
                if not deps:
                    self._push(sid)

    def start(self) -> None:
        self._started = True
        for sid in self.wf.order:
            if (
                self.remaining[sid] == 0
                and self.status[sid] is StepStatus.PENDING
                and sid not in self.wf.fallback_of
            ):
                self._push(sid)

    def succeeded(self, sid: str, status: StepStatus = StepStatus.SUCCEEDED) -> list[str]:
        """A step committed its output. Returns fallback steps that are no longer needed
        (now skipped)."""
        self.status[sid] = status
        primary = self.wf.fallback_of.get(sid)
        if primary is not None:  # a fallback stood in for its primary
            self.output_from[primary] = sid
            self._settle(primary, satisfied=True)
            return []
        self._settle(sid, satisfied=True)
        fb = self.wf.steps[sid].fallback
        if fb and self.status[fb] is StepStatus.PENDING:
            self.status[fb] = StepStatus.SKIPPED
            return [fb]
        return []

    def skipped(self, sid: str) -> None:
        self.status[sid] = StepStatus.SKIPPED
        if sid not in self.wf.fallback_of:
            self._settle(sid, satisfied=False)

    def failed(self, sid: str) -> FailureAction:
        """A step failed for good (retries exhausted). Says what its policy does next."""
        self.status[sid] = StepStatus.FAILED
        primary = self.wf.fallback_of.get(sid)
        if primary is not None:  # the fallback failed too: the primary's own failure stands
            self.stop_reason = f"step {primary!r} failed and so did its fallback {sid!r}"
            return FailureAction.STOP_RUN
        policy = self.wf.steps[sid].on_failure
        if policy is FailurePolicy.FAIL:
            self.stop_reason = self.stop_reason or f"step {sid!r} failed"
            return FailureAction.STOP_RUN
        if policy is FailurePolicy.CONTINUE:
            self._settle(sid, satisfied=False)
            return FailureAction.SKIP_DEPENDENTS
        if policy is FailurePolicy.FALLBACK:
            fb = self.wf.steps[sid].fallback
            assert fb is not None
            self._push(fb)
            return FailureAction.RUN_FALLBACK
        return FailureAction.USE_DEFAULT

    def rejected(self, sid: str, reason: str) -> FailureAction:
        """An approval gate was rejected (or not answered in time): its dependents never run.
        Without an on_reject step the run stops; with one, that step (which waits on the
        gate) runs."""
        self.status[sid] = StepStatus.FAILED
        if sid not in self.wf.reject_to:
            self.stop_reason = self.stop_reason or reason
            return FailureAction.STOP_RUN
        self.rejections[sid] = reason
        self._settle(sid, satisfied=False)
        return FailureAction.RUN_FALLBACK

    def _on_reject_step(self, sid: str) -> tuple[str | None, str | None]:
        """A gate's on_reject step, ready: skipped when its gate was approved; else its
        other dependencies decide (returns the first without an output, and a skip reason)."""
        gate = self.wf.reject_of[sid]
        if gate not in self.rejections:
            status = self.status[gate]
            return None, f"gate {gate!r} " + ("approved" if status.has_output else status.value)
        deps = self.wf.deps[sid]
        return next((d for d in deps if d != gate and not self.status[d].has_output), None), None

    def degraded(self, sid: str) -> None:
        self.status[sid] = StepStatus.DEGRADED
        self._settle(sid, satisfied=True)

    def cancelled(self, sid: str) -> None:
        self.status[sid] = StepStatus.CANCELLED

    def waiting(self, sid: str) -> None:
        self.status[sid] = StepStatus.WAITING

    def again(self, sid: str) -> None:
        """A waiting step is ready to run again (a pipeline whose batch the client answered:
        its items go on)."""
        self.status[sid] = StepStatus.PENDING
        self._queued.discard(sid)
        self._push(sid)

    def stop(self, reason: str) -> None:
        """Start no more steps (a budget ran out, say); the run fails with `reason`."""
        self.stop_reason = reason

    # -- questions -------------------------------------------------------------------------
    def pop_ready(self) -> Decision | None:
        if self.stop_reason is not None or not self._ready:
            return None
        _, _, sid = heapq.heappop(self._ready)
        if sid in self.expanded:  # its steps have settled, whatever became of them
            return Decision(sid, None)
        dep = self.unsatisfied_dep.get(sid)
        if sid in self.wf.reject_of:
            dep, skip = self._on_reject_step(sid)
            if skip is not None:
                return Decision(sid, skip)
        if dep is not None and self.wf.steps[sid].trigger is Trigger.ALL_SUCCEEDED:
            if dep in self.rejections:
                return Decision(sid, self.rejections[dep])
            why = "failed" if self.status[dep] is StepStatus.FAILED else "was skipped"
            return Decision(sid, f"dependency {dep!r} {why}")
        return Decision(sid, None)

    @property
    def has_ready(self) -> bool:
        return self.stop_reason is None and bool(self._ready)

    @property
    def done(self) -> bool:
        return self.unsettled == 0

    def not_needed_fallbacks(self) -> list[str]:
        return [f for f in self.wf.fallback_of if self.status[f] is StepStatus.PENDING]

    # -- internals -------------------------------------------------------------------------
    def _push(self, sid: str) -> None:
        if sid in self.expanded:
            # made ready again after its added steps settle: once each time it adds some
            if sid in self._collecting:
                return
            self._collecting.add(sid)
        elif sid in self._queued:
            return
        self._queued.add(sid)
        heapq.heappush(self._ready, (-self._priority.get(sid, 0.0), self._index[sid], sid))

    def _settle(self, sid: str, *, satisfied: bool) -> None:
        self.unsettled -= 1
        for child in self.wf.dependents[sid]:
            if not satisfied:
                self.unsatisfied_dep.setdefault(child, sid)
            self.remaining[child] -= 1
            if (
                self.remaining[child] == 0
                and self.status[child] is StepStatus.PENDING
                and child not in self.wf.fallback_of  # those run only when invoked
            ):
                self._push(child)
