"""The submitting side of the Temporal backend: start a run as the generic workflow, read
its record (a query while it is open, its result once closed: a closed run reads without
any worker), answer its client steps (an update), cancel it, list the runs.

Every run is one workflow execution whose id is the run's id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from tutti_mcp.engine.errors import ConfigurationError, RunStateError, TuttiError
from tutti_mcp.engine.inputs import coerce_inputs
from tutti_mcp.engine.service import Engine, new_run_id
from tutti_mcp.engine.spec import ExecutorKind, WorkflowSpec
from tutti_mcp.engine.temporal.codec import from_wire, run_from_json, to_wire
from tutti_mcp.engine.temporal.workflow import RUN_WORKFLOW
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.memory.runs.store import RunNotFound

_OPEN = WorkflowExecutionStatus.RUNNING


class TemporalUnavailable(ConfigurationError):
    """The Temporal frontend does not answer."""


class NoWorker(ConfigurationError):
    """No worker answers for a run's task queue."""


QUERY_TIMEOUT_S = 10.0  # a worker answers a query in milliseconds; none answers: say so


@dataclass(frozen=True)
class RunView:
    """A run's record as Temporal has it, and whether only client steps can move it on."""

    record: RunRecord
    blocked_on_client: bool
    open: bool
    rolls: int = 0  # executions before this one (a long run goes on in new ones)


def refusals(wf: Workflow) -> list[str]:
    """What in a workflow does not run on the Temporal backend (yet), one line each."""
    out = []
    for sid in wf.order:
        step = wf.steps[sid]
        if step.pipeline is not None:
            out.append(
                f"step {sid!r}: pipeline steps run on the embedded backend only "
                "(unset TUTTI_BACKEND to run this workflow here)"
            )
        elif wf.executors.get(sid) is ExecutorKind.SAMPLING:
            out.append(
                f"step {sid!r}: sampling needs the MCP client's session, which a Temporal "
                "worker does not have; use `run: client` (the caller does it) or `run: prompt`"
            )
    return out


class TemporalRuns:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @classmethod
    async def connect(cls, address: str, namespace: str, task_queue: str) -> TemporalRuns:
        try:
            client = await Client.connect(address, namespace=namespace)
        except RuntimeError as exc:  # the core SDK's connection error
            raise TemporalUnavailable(
                f"cannot reach Temporal at {address} (namespace {namespace!r}): {exc}. Start "
                "it (for a local try: `temporal server start-dev`) or set "
                "TUTTI_TEMPORAL_ADDRESS / TUTTI_TEMPORAL_NAMESPACE"
            ) from None
        return cls(client, task_queue)

    async def start(
        self,
        engine: Engine,
        spec: Workflow | WorkflowSpec | Mapping[str, Any],
        inputs: Mapping[str, Any] | None,
        workspace: str,
    ) -> str:
        """Check a spec as the embedded backend would (and what Temporal cannot run yet),
        then start it as a run; returns the run's id. Whether its steps can run (an API key,
        the programs shell steps name) is each worker's to say."""
        wf = engine.compile(spec)
        problems = refusals(wf)
        if problems:
            raise ConfigurationError(
                "this workflow cannot run on the Temporal backend: " + "; ".join(problems)
            )
        values = coerce_inputs(wf.spec, inputs or {})
        run_id = new_run_id()
        executor = wf.spec.defaults.model_executor or engine.config.model_executor
        await self.submit(run_id, engine.stored_spec(wf), values, workspace, executor, wf.spec.name)
        return run_id

    async def submit(
        self,
        run_id: str,
        spec: Mapping[str, Any],
        inputs: Mapping[str, Any],
        workspace: str,
        model_executor: ExecutorKind,
        name: str,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        args: dict[str, Any] = {
            **(extra or {}),
            "run_id": run_id,
            "spec": dict(spec),
            "inputs": dict(inputs),
            "workspace": workspace,
            "model_executor": model_executor.value,
        }
        await self.client.start_workflow(
            RUN_WORKFLOW,
            # as JSON text: Temporal's converter would sort the keys of the spec's objects,
            # and a step's output may be such an object, read in order by a later template
            to_wire(args),
            id=run_id,
            task_queue=self.task_queue,
            memo={"name": name},
            static_summary=f"tutti run of {name}",
        )

    def handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(run_id)

    async def describe(self, run_id: str) -> WorkflowExecutionDescription:
        try:
            return await self.handle(run_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise RunNotFound(run_id) from None
            raise

    async def view(self, run_id: str) -> RunView:
        desc = await self.describe(run_id)
        handle = self.handle(run_id)
        if desc.status == _OPEN:
            wire = await self._query(run_id, "run")
            data = None if wire is None else from_wire(wire)
            if data is None:  # not created in the workflow yet
                return RunView(await _pending(run_id, desc), False, True)
            record = run_from_json(data)
            blocked = bool(data.get("blocked_on_client"))
            if blocked and record.status is RunStatus.RUNNING:
                record.status = RunStatus.WAITING  # only the caller can move it on now
            return RunView(record, blocked, True, int(data.get("rolls", 0)))
        try:
            data = from_wire(await handle.result())
        except WorkflowFailureError as exc:
            record = await _pending(run_id, desc)
            record.status = RunStatus.FAILED
            record.error = _failure_text(exc)
            return RunView(record, False, False)
        return RunView(run_from_json(data), False, False)

    async def events(self, run_id: str, after: int) -> list[dict[str, Any]]:
        """The run's events after sequence number `after` (an open run's only)."""
        data: list[dict[str, Any]] = from_wire(await self._query(run_id, "events", after))
        return data

    async def _query(self, run_id: str, name: str, *args: Any) -> Any:
        """An open run is read from its workflow, which a worker must answer for."""
        try:
            return await self.handle(run_id).query(
                name, *args, rpc_timeout=timedelta(seconds=QUERY_TIMEOUT_S)
            )
        except RPCError as exc:
            if exc.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                raise NoWorker(
                    f"run {run_id} is open on Temporal, but no `tutti worker` answered for "
                    f"task queue {self.task_queue!r} within {QUERY_TIMEOUT_S:g}s: start one "
                    f"(TUTTI_TEMPORAL_TASK_QUEUE={self.task_queue} tutti worker); the run "
                    "goes on from where it is once a worker takes it"
                ) from None
            raise

    async def record(self, run_id: str) -> RunRecord:
        return (await self.view(run_id)).record

    async def complete(
        self, run_id: str, step_id: str, output: Any, error: str | None
    ) -> RunStatus:
        desc = await self.describe(run_id)
        if desc.status != _OPEN:
            view = await self.view(run_id)
            raise RunStateError(
                f"run {run_id} is {view.record.status.value}: it takes no more step results"
            )
        try:
            status = await self.handle(run_id).execute_update(
                "complete_step", to_wire({"step_id": step_id, "output": output, "error": error})
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            # the engine's message alone, as the embedded backend says it (str() of an
            # ApplicationError starts with its type)
            text = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            raise TuttiError(text) from None
        return RunStatus(status)

    async def cancel(self, run_id: str) -> None:
        desc = await self.describe(run_id)
        if desc.status != _OPEN:
            view = await self.view(run_id)
            raise RunStateError(
                f"run {run_id} already {view.record.status.value}; nothing to cancel"
            )
        await self.handle(run_id).cancel()

    async def list_runs(self, status: RunStatus | None, limit: int) -> list[RunRecord]:
        out: list[RunRecord] = []
        query = f'WorkflowType = "{RUN_WORKFLOW}" AND TaskQueue = "{self.task_queue}"'
        async for wf in self.client.list_workflows(query, limit=max(limit * 4, limit)):
            try:
                record = await self.record(wf.id)
            except (RPCError, RunNotFound):
                continue
            if status is None or record.status is status:
                out.append(record)
                if len(out) >= limit:
                    break
        return out


async def _pending(run_id: str, desc: WorkflowExecutionDescription) -> RunRecord:
    """What is known of a run whose workflow holds no record (not begun, or refused)."""
    return RunRecord(
        id=run_id,
        name=str(await desc.memo_value("name", default=run_id)),
        status=RunStatus.PENDING,
        spec={},
        inputs={},
        created_at=desc.start_time.timestamp(),
    )


def _failure_text(exc: WorkflowFailureError) -> str:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or exc)
