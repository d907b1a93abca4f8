"""The MCP server's runs on the Temporal backend: the run supervisor's interface (what the
tools call), over Temporal. A run starts as the generic workflow, is read by query (or its
result, once closed), takes client results by update and stops by Temporal cancellation.
Nothing executes in this process: `tutti worker` processes run the workflow and its steps,
so a run goes on while no server is up, and any server on the same Temporal reads it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from tutti_mcp.engine.plan import estimate_cost
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import WorkflowSpec
from tutti_mcp.engine.supervisor import (
    PROGRESS_EVERY_S,
    PlannedSpec,
    ReportProgress,
    RunSupervisor,
    fingerprint,
)
from tutti_mcp.engine.temporal import reruns
from tutti_mcp.engine.temporal.client import TemporalRuns, refusals
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import Checkpoint, RunRecord, RunStatus

POLL_S = 0.1  # how often a waiter asks an open run's workflow for its record


class TemporalSupervisor(RunSupervisor):
    """`engine` only compiles and plans here (and holds the local store the tools use for
    their own tables); the runs are Temporal's."""

    def __init__(self, engine: Engine, tg: TaskGroup, runs: TemporalRuns) -> None:
        super().__init__(engine, tg, poll_s=POLL_S)
        self.runs = runs
        self._open: dict[str, bool] = {}  # what the last look at each run said

    # -- starting ------------------------------------------------------------------------
    async def start(
        self,
        spec: Workflow | WorkflowSpec | Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        before: Callable[[str], None] | None = None,
        workspace: str | None = None,
    ) -> str:
        where = workspace or str(self.engine.config.workspace.resolve())
        run_id = await self.runs.start(self.engine, spec, inputs, where)
        self._open[run_id] = True
        if before is not None:
            before(run_id)
        return run_id

    async def resume(self, run_id: str, before: Callable[[str], None] | None = None) -> RunRecord:
        """An open run carries on by itself on the workers; a closed one that did not
        succeed runs again under its id from every step it committed."""
        view = await self.runs.view(run_id)
        if view.open:
            self._open[run_id] = True
            return view.record
        record = await reruns.resume(self.runs, run_id)
        self._open[run_id] = True
        if before is not None:
            before(run_id)
        return record

    async def fork(
        self,
        run_id: str,
        from_step: str | None,
        inputs: Mapping[str, Any] | None,
        before: Callable[[str], None] | None = None,
    ) -> tuple[str, list[str]]:
        new_id, kept = await reruns.fork(self.runs, self.engine, run_id, from_step, inputs)
        self._open[new_id] = True
        if before is not None:
            before(new_id)
        return new_id, kept

    async def complete(
        self,
        run_id: str,
        step_id: str,
        output: Any,
        error: str | None,
        before: Callable[[str], None] | None = None,
    ) -> None:
        await self.runs.complete(run_id, step_id, output, error)

    async def cancel(self, run_id: str, wait_s: float = 5.0) -> RunRecord:
        await self.runs.cancel(run_id)
        return await self.wait(run_id, lambda r: r.status.finished, wait_s)

    # -- reading -------------------------------------------------------------------------
    async def plan(self, spec: Workflow | WorkflowSpec | Mapping[str, Any]) -> PlannedSpec:
        """As on the embedded backend, but what can run is the workers' to say (their API
        key, their shell policy): the blocker is only what Temporal cannot run."""
        wf = self.engine.compile(spec)
        plan, history = await self.engine.plan_with_history(wf)
        problems = refusals(wf)
        blocker = "; ".join(problems) if problems else None
        return PlannedSpec(
            wf, plan, history, estimate_cost(wf, plan, self.engine.config.models), blocker
        )

    async def load(self, run_id: str) -> RunRecord:
        return await self.snapshot(run_id)

    async def list_runs(self, status: RunStatus | None, limit: int) -> list[RunRecord]:
        return await self.runs.list_runs(status, limit)

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        run = await self.snapshot(run_id)
        cps = [
            Checkpoint(
                rec.step_id,
                rec.seq,
                rec.status,
                rec.output,
                rec.attempts,
                rec.started_at,
                rec.finished_at or 0.0,
                usage=rec.usage,
                executor=rec.executor,
                error=rec.error,
            )
            for rec in run.steps.values()
            if rec.seq is not None and rec.status.has_output
        ]
        return sorted(cps, key=lambda cp: cp.seq)

    # -- watching ------------------------------------------------------------------------
    def live(self, run_id: str) -> bool:
        return self._open.get(run_id, False)

    async def snapshot(self, run_id: str) -> RunRecord:
        view = await self.runs.view(run_id)
        self._open[run_id] = view.open
        return view.record

    def notify(self, run_id: str) -> None:
        """Nothing to wake: waiters here poll the workflow."""

    def resting(self, run: RunRecord) -> bool:
        return run.status is not RunStatus.RUNNING and run.status is not RunStatus.PENDING

    def failure(self, run_id: str) -> str | None:
        return None  # a run Temporal could not start says so in its own record

    async def wait(
        self,
        run_id: str,
        until: Callable[[RunRecord], bool],
        timeout_s: float,
        progress: ReportProgress | None = None,
        *,
        any_change: bool = False,
    ) -> RunRecord:
        run = await self.snapshot(run_id)
        if until(run) or timeout_s <= 0:
            return run
        seen = fingerprint(run)
        reported = 0.0
        told = 0
        with anyio.move_on_after(timeout_s):
            while self._open.get(run_id, False):
                await anyio.sleep(self.poll_s)
                run = await self.snapshot(run_id)
                changed = fingerprint(run) != seen
                done = until(run) or (any_change and changed)
                now = time.monotonic()
                if (
                    progress is not None
                    and changed
                    and (done or now - reported >= PROGRESS_EVERY_S)
                ):
                    reported = now
                    settled = sum(1 for s in run.steps.values() if s.status.terminal)
                    told = max(told, settled)
                    await progress(told, max(len(run.steps), told), f"run {run.status.value}")
                seen = fingerprint(run)
                if done:
                    break
        return run
