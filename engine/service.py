"""The engine's service: validate and plan specs, create, claim, execute, resume, fork and
cancel runs, and complete client-executed steps. Executors and the store are injected."""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import (
    RunStateError,
    StepError,
    StepNotWaiting,
    StepOutputRejected,
    StepRunsAChild,
    UnknownStep,
)
from tutti_mcp.engine.execution.children import child_run_id
from tutti_mcp.engine.execution.context import EventSink, PreparedRun, RunContext
from tutti_mcp.engine.execution.runner import RunExecution
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.gates import gate_answer, record_answer
from tutti_mcp.engine.inputs import coerce_inputs
from tutti_mcp.engine.modes.pipeline.client_batches import answer_stored
from tutti_mcp.engine.outputs import shape_output
from tutti_mcp.engine.plan import Plan, make_plan
from tutti_mcp.engine.preflight import preflight
from tutti_mcp.engine.run_claims import lost_claim, running_elsewhere
from tutti_mcp.engine.spec import ExecutorKind, WorkflowSpec, every_step, parse_spec
from tutti_mcp.engine.workflow import Workflow, compile_workflow
from tutti_mcp.memory.runs.history import WorkflowHistory
from tutti_mcp.memory.runs.owner import current_owner, owner_alive
from tutti_mcp.memory.runs.records import (
    Checkpoint,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)
from tutti_mcp.memory.runs.store import RunNotFound, RunStore


def fork_plan(
    wf: Workflow, parent: RunRecord, from_step: str | None, inputs: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """A fork's inputs, and the parent's steps it keeps: those committed, except
    `from_step`, the steps that read a changed input, and everything downstream of those."""
    if from_step is not None and from_step not in wf.steps:
        raise UnknownStep(parent.id, from_step, wf.order)
    merged = {**parent.inputs, **dict(inputs or {})}
    new_inputs = coerce_inputs(wf.spec, merged)
    changed = {k for k in new_inputs if new_inputs[k] != parent.inputs.get(k)}
    redo = {from_step} if from_step else set()
    redo |= {sid for sid in wf.order if wf.input_refs.get(sid, frozenset()) & changed}
    import networkx as nx  # imported when needed: it is slow to import

    graph = wf.graph
    for sid in list(redo):
        redo |= nx.descendants(graph, sid)
    keep = [
        sid
        for sid in wf.order
        if sid not in redo
        and parent.steps[sid].status.has_output
        and parent.steps[sid].seq is not None
    ]
    return new_inputs, keep


def new_run_id() -> str:
    return "run_" + time.strftime("%Y%m%d") + "_" + secrets.token_hex(4)


class Engine:
    """Creates, claims and executes runs in this process; executors and the store are
    injected. The supervisor (engine/supervisor.py) owns runs that outlive a call."""

    def __init__(
        self,
        store: RunStore,
        executors: Mapping[ExecutorKind, StepExecutor],
        config: EngineConfig | None = None,
    ) -> None:
        self.store = store
        self.executors = dict(executors)
        self.config = config or EngineConfig()
        self.context = RunContext(store, self.executors, self.config, children=self)
        self.live: dict[str, RunExecution] = {}
        self._claimed: set[str] = set()  # claimed here, not executing yet
        # Compiled workflows by the spec's canonical JSON: a spec seen before (every run of
        # a saved workflow, every resume) is not parsed and compiled again. Workflows are
        # never changed once compiled, so runs can share one.
        self._compiled: OrderedDict[str, Workflow] = OrderedDict()
        # The last plan of each workflow, with the measured durations it was made from: a
        # new run of a workflow plans again only when its history has changed.
        self._plans: OrderedDict[int, tuple[Workflow, tuple[tuple[str, float], ...], Plan]] = (
            OrderedDict()
        )
        self._stored: dict[int, tuple[Workflow, dict[str, Any]]] = {}
        self._workspace: str | None = None

    # -- specs -------------------------------------------------------------------------------
    def compile(self, spec: Workflow | WorkflowSpec | Mapping[str, Any]) -> Workflow:
        """Validate a spec and decide, once, where each step runs and on which model."""
        if isinstance(spec, Workflow):
            return spec
        key = _spec_key(spec)
        wf = self._compiled.get(key) if key is not None else None
        if wf is not None:
            self._compiled.move_to_end(key)  # type: ignore[arg-type]
            return wf
        parsed = spec if isinstance(spec, WorkflowSpec) else parse_spec(dict(spec))
        cfg = self.config
        wf = compile_workflow(parsed, model_executor=cfg.model_executor, models=cfg.models)
        if key is not None:
            self._compiled[key] = wf
            if len(self._compiled) > COMPILED_CACHE:
                self._compiled.popitem(last=False)
        return wf

    def plan(self, wf: Workflow, history_s: Mapping[str, float] | None = None) -> Plan:
        durations = tuple(sorted((history_s or {}).items()))
        cached = self._plans.get(id(wf))
        if cached is not None and cached[0] is wf and cached[1] == durations:
            self._plans.move_to_end(id(wf))
            return cached[2]
        plan = make_plan(wf, self.config.models, history_s)
        self._plans[id(wf)] = (wf, durations, plan)  # holds wf: its id is not reused meanwhile
        if len(self._plans) > COMPILED_CACHE:
            self._plans.popitem(last=False)
        return plan

    async def plan_with_history(self, wf: Workflow) -> tuple[Plan, WorkflowHistory]:
        """The plan with the median step durations of the workflow's recent runs as its
        estimates (where a step gives none): critical path and priorities follow them."""
        if self.config.catalog is not None:
            await self.config.catalog.ensure(
                wf.model_ids[sid] for sid in wf.on(ExecutorKind.PROMPT)
            )
        history = await self.store.workflow_history(wf.spec.name)
        return self.plan(wf, history.durations()), history

    def preflight(self, wf: Workflow) -> None:
        """Fail before anything runs when a step's executor is not available here."""
        preflight(wf, self.executors, self.config)

    # -- runs --------------------------------------------------------------------------------
    async def create(
        self,
        spec: Workflow | WorkflowSpec | Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        *,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        workspace: str | None = None,
    ) -> PreparedRun:
        """Store a new run, pending; returns it prepared (compiled and planned) for
        `execute` in this process. Nothing runs yet."""
        wf = self.compile(spec)
        self.preflight(wf)
        values = coerce_inputs(wf.spec, inputs or {})
        run = RunRecord(
            id=run_id or new_run_id(),
            name=wf.spec.name,
            status=RunStatus.PENDING,
            spec=self.stored_spec(wf),
            inputs=values,
            created_at=self.config.clock(),
            parent_run_id=parent_run_id,
            workspace=workspace or self._workspace_path(),
        )
        await self.store.create_run(run, wf.order)
        run.steps = {sid: StepRecord(sid) for sid in wf.order}
        plan, _ = await self.plan_with_history(wf)
        return PreparedRun(run, wf, plan)

    async def run_child(
        self,
        parent_id: str,
        step_id: str,
        spec: WorkflowSpec,
        inputs: Mapping[str, Any],
        workspace: Path,
    ) -> RunRecord:
        """A `workflow` step's child run (engine/execution/children.py), as it rests."""
        child_id = child_run_id(parent_id, step_id)
        try:
            run = await self.load(child_id)
        except RunNotFound:
            where = str(workspace.resolve())
            prepared = await self.create(
                spec, inputs, parent_run_id=parent_id, run_id=child_id, workspace=where
            )
            return await self.execute(prepared)
        if run.status is RunStatus.SUCCEEDED:
            return run
        return await self.execute(await self.claim(child_id))

    async def create_run(
        self,
        spec: Workflow | WorkflowSpec | Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> str:
        """`create`, for callers that keep only the id (`execute(run_id)` loads it again)."""
        return (await self.create(spec, inputs, **kw)).run_id

    def _workspace_path(self) -> str:
        if self._workspace is None:  # resolved once: it names where this engine runs steps
            self._workspace = str(self.config.workspace.resolve())
        return self._workspace

    def stored_spec(self, wf: Workflow) -> dict[str, Any]:
        """The spec as stored with the run, with where its model steps run made explicit, so
        a resume (in any process, with any settings) hands them to the same executor. Made
        once per compiled workflow and shared by its runs' records (never changed)."""
        cached = self._stored.get(id(wf))
        if cached is None or cached[0] is not wf:
            if len(self._stored) >= COMPILED_CACHE:
                self._stored.clear()
            cached = self._stored[id(wf)] = (wf, self._spec_as_stored(wf.spec))
        return cached[1]

    def _spec_as_stored(self, spec: WorkflowSpec) -> dict[str, Any]:
        steps = list(every_step(spec.steps))  # and pipelines' stages: they run as steps
        steps += [st.step for s in steps if s.pipeline is not None for st in s.pipeline.stages]
        if spec.defaults.model_executor is None and any(
            s.run is None and s.executor is ExecutorKind.PROMPT for s in steps
        ):
            defaults = spec.defaults.model_copy(
                update={"model_executor": self.config.model_executor}
            )
            spec = spec.model_copy(update={"defaults": defaults})
        return spec.model_dump(mode="json", exclude_defaults=True)

    async def load(self, run_id: str) -> RunRecord:
        """The run's record; RunNotFound (the store's) for an unknown id."""
        return await self.store.load_run(run_id)

    async def execute(
        self,
        run: str | PreparedRun,
        *,
        attached: bool = False,
        on_event: EventSink | None = None,
    ) -> RunRecord:
        """Run (or continue) a run until it rests: finished, failed, cancelled, or (when not
        `attached`) waiting for client steps. Returns the record with metrics. A run id
        is claimed first; a prepared run is claimed unless `claim` prepared it."""
        prepared = run if isinstance(run, PreparedRun) else await self.claim(run)
        if prepared.claimed_from is None:
            await self._take(prepared.run)
            prepared.claimed_from = RunStatus.PENDING
        run_id = prepared.run_id
        try:
            execution = RunExecution(self.context, prepared, attached=attached, on_event=on_event)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release(run_id, prepared.claimed_from)
            raise
        self._claimed.discard(run_id)
        self.live[run_id] = execution
        try:
            await execution.execute()
        finally:
            del self.live[run_id]
        return execution.run

    async def run(
        self,
        spec: Workflow | WorkflowSpec | Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> RunRecord:
        return await self.execute(await self.create(spec, inputs), **kw)

    async def resume(self, run_id: str, **kw: Any) -> RunRecord:
        return await self.execute(await self.claim(run_id), **kw)

    async def check_resumable(self, run_id: str) -> RunRecord:
        """Raise unless the run can be resumed here and now (a run left `running` by a dead
        process can). Writes nothing: `claim` does."""
        run = await self.load(run_id)
        if run_id in self.live or run_id in self._claimed:
            raise RunStateError(f"run {run_id} is already running in this process")
        if run.status is RunStatus.RUNNING:
            if owner_alive(run.owner):
                raise running_elsewhere(run_id, run.owner)
        elif not run.status.resumable:
            raise RunStateError(
                f"run {run_id} is {run.status.value}; only failed, cancelled, interrupted or waiting "
                "runs resume (fork it with a from_step or new inputs to run it again)"
            )
        return run

    async def claim(self, run_id: str) -> PreparedRun:
        """Make this process the one that executes the run, before anything runs: after
        `check_resumable`, one compare-and-set in the store, so of two processes (or
        tasks) resuming a run at once exactly one gets it; the other gets the error that
        the run is running elsewhere. The run then reads `running` to everyone. Returns it
        prepared for `execute`; a run that cannot start here is given back as it was."""
        run = await self.check_resumable(run_id)
        previous = await self._take(run)
        try:
            wf = self.compile(run.spec)
            plan, _ = await self.plan_with_history(wf)
            self.preflight(wf)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release(run_id, previous)
            raise
        return PreparedRun(run, wf, plan, claimed_from=previous)

    async def _take(self, run: RunRecord) -> RunStatus:
        """Claim `run` in the store for this process; returns its status before."""
        if run.id in self.live or run.id in self._claimed:
            raise RunStateError(f"run {run.id} is already running in this process")
        previous = run.status
        dead = run.owner if previous is RunStatus.RUNNING else None  # found dead: take over
        owner = current_owner()
        # Shielded: once the claim is sent, its outcome must be recorded here.
        with anyio.CancelScope(shield=True):
            claim = await self.store.claim_run(run.id, owner, dead)
        if not claim.won:  # another process, or another task here, has it
            raise lost_claim(run.id, claim)
        run.status, run.owner = RunStatus.RUNNING, owner
        self._claimed.add(run.id)
        return previous

    async def _release(self, run_id: str, previous: RunStatus) -> None:
        """Give back a claimed run that could not start: as it was, or interrupted if it
        was left running by a dead process."""
        self._claimed.discard(run_id)
        status = RunStatus.INTERRUPTED if previous is RunStatus.RUNNING else previous
        await self.store.set_run(run_id, status=status, owner=None)

    async def fork(
        self,
        run_id: str,
        *,
        from_step: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> tuple[str, list[str]]:
        """A new run of the same spec (its lineage: `parent_run_id`) that keeps the parent's
        checkpoints except `from_step`, the steps that read a changed input, and everything
        downstream of those. Returns the new run id and the steps kept."""
        parent = await self.load(run_id)
        wf = self.compile(parent.spec)
        new_inputs, keep = fork_plan(wf, parent, from_step, inputs)
        # executed from the store (with the kept checkpoints) and where its parent worked
        new_id = await self.create_run(
            parent.spec, new_inputs, parent_run_id=run_id, workspace=parent.workspace
        )
        kept = [c for c in await self.store.checkpoints(run_id) if c.step_id in keep]
        for n, cp in enumerate(kept, 1):
            await self.store.commit_checkpoint(new_id, replace(cp, seq=n))
        return new_id, keep

    def cancel(self, run_id: str) -> bool:
        """Cancel a run executing in this process; its running steps are recorded cancelled."""
        execution = self.live.get(run_id)
        if execution is None:
            return False
        execution.request_cancel()
        return True

    async def complete_step(
        self, run_id: str, step_id: str, *, output: Any = None, error: str | None = None
    ) -> RunStatus:
        """Supply the output (or the failure) of a step handed to the client.

        In the process executing the run, the run moves on at once. Otherwise the result
        is committed and the run continues when it is resumed, or when the process
        executing it next polls the store."""
        execution = self.live.get(run_id)
        if execution is not None:
            await execution.deliver(step_id, output, error)
            return RunStatus.RUNNING
        run = await self.load(run_id)
        rec = run.steps.get(step_id)
        if rec is None:
            raise UnknownStep(run_id, step_id, list(run.steps))
        if rec.status is not StepStatus.WAITING:
            raise StepNotWaiting(run_id, step_id, rec.status.value)
        wf = self.compile(run.spec)
        step = wf.definition(step_id, rec.parent, rec.scope)
        if step.workflow is not None:
            raise StepRunsAChild(run_id, step_id, child_run_id(run_id, step_id))
        if step.pipeline is not None:  # a batch of a pipeline's items: they go on at resume
            await answer_stored(self.store, run_id, rec, step.pipeline, output, error)
            return run.status
        if step.approve is not None:  # an approval gate: yes or no
            await record_answer(self.store, run_id, rec, gate_answer(step_id, output, error))
            return run.status
        now = self.config.clock()
        if error is None:
            try:
                value = shape_output(step, output)
            except StepError as exc:
                raise StepOutputRejected(step_id, str(exc)) from None
            cp = Checkpoint(
                step_id,
                0,
                StepStatus.SUCCEEDED,
                value,
                rec.attempts,
                rec.started_at,
                now,
                executor=ExecutorKind.CLIENT.value,
            )
            await self.store.commit_checkpoint(run_id, cp)
        else:
            await self.store.set_step(
                run_id,
                step_id,
                StepStatus.FAILED,
                error=f"the client reported: {error}",
                finished_at=now,
                detail={"reported_by_client": True},
            )
        return run.status


COMPILED_CACHE = 128  # workflows kept compiled per engine


def _spec_key(spec: WorkflowSpec | Mapping[str, Any]) -> str | None:
    """The spec's canonical JSON, or None for a spec that has no JSON form (it is then
    parsed, and refused with a clear error, as usual)."""
    if isinstance(spec, WorkflowSpec):
        return "model:" + spec.model_dump_json(exclude_defaults=True)
    try:
        return "data:" + json.dumps(spec, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
