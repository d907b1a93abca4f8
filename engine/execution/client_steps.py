"""Steps handed to the client. A result reported in this process arrives through
`check`, then the runner commits it; one committed by another process (a second server,
the CLI) is seen by polling the store while steps wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from tutti_mcp.engine.errors import (
    StepError,
    StepErrorKind,
    StepNotWaiting,
    StepOutputRejected,
    UnknownStep,
)
from tutti_mcp.engine.outputs import shape_output
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import RunRecord, StepRecord, StepStatus
from tutti_mcp.memory.runs.store import RunStore


class ClientSteps:
    def __init__(self, store: RunStore, run: RunRecord, wf: Workflow, poll_s: float) -> None:
        self.store = store
        self.run = run  # the ledger's mirror: read here, never written
        self.run_id = run.id
        self.wf = wf
        self.poll_s = poll_s
        self.waiting: set[str] = set()
        self.resting = False  # nothing more can happen in this execution
        self._wake = anyio.Event()

    def check(self, sid: str, output: Any, error: str | None) -> Any:
        """The output to commit for a result the client reports, or a condition-named
        error when the report cannot be taken."""
        if sid not in self.wf.steps:
            raise UnknownStep(self.run_id, sid, self.wf.order)
        if sid not in self.waiting:
            raise StepNotWaiting(self.run_id, sid, self.run.steps[sid].status.value)
        if error is not None:
            return None
        try:
            return shape_output(self.wf.steps[sid], output)
        except StepError as exc:
            raise StepOutputRejected(sid, str(exc)) from None

    def wake(self, *, resting: bool = False) -> None:
        """Something changed that the watcher should look at."""
        self.resting = self.resting or resting
        self._wake.set()

    async def watch(self, settle: Callable[[list[StepRecord]], Awaitable[None]]) -> None:
        """Attached runs wait here while steps wait on the client: every `poll_s`, steps
        settled by another process are read from the store and handed to `settle`."""
        while not self.resting:
            with anyio.move_on_after(self.poll_s) as scope:
                await self._wake.wait()
            self._wake = anyio.Event()
            if scope.cancelled_caught and self.waiting and not self.resting:
                run = await self.store.load_run(self.run_id)
                await settle([run.steps[sid] for sid in sorted(self.waiting)])

    @staticmethod
    def settled_elsewhere(rec: StepRecord) -> bool | None:
        """True: committed with an output; False: reported failed; None: still waiting."""
        if rec.status.has_output and rec.seq is not None:
            return True
        if rec.status is StepStatus.FAILED:
            return False
        return None


def client_failure(rec: StepRecord) -> StepError:
    return StepError(
        rec.error or "the client reported a failure", retryable=False, kind=StepErrorKind.CLIENT
    )
