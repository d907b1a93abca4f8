"""The `next` field of the workflow tools' answers: what the caller should call next."""

from __future__ import annotations

from collections.abc import Sequence

from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.tools.results import ClientTask
from tutti_mcp.tools.sampling import SAMPLING_ALTERNATIVES


def next_step(
    run: RunRecord,
    tasks: Sequence[ClientTask],
    sampling: int,
    error: str | None,
    sampler: bool = True,
) -> str:
    """What to call next. `sampling`: requests parked for the client's model; `sampler`:
    whether the caller offers MCP sampling."""
    rid = run.id
    if error and run.status is RunStatus.PENDING:
        return (
            f"The run could not start: {error}. Fix the cause, then call workflow_resume('{rid}')."
        )
    if tasks:
        ids = ", ".join(t.step_id for t in tasks)
        gates = [t.step_id for t in tasks if run.steps[t.step_id].request.get("approval")]
        asks = (
            f" {', '.join(gates)} ask for approval: put each question to your user and report "
            'their answer as output={"approve": true|false, "note": "..."}; never answer for them.'
            if gates
            else ""
        )
        return (
            f"Do the client_tasks ({ids}); they are independent, so work on them in parallel. "
            f"Report each with step_complete('{rid}', step_id, output=...) (or error=... if it "
            "cannot be done); the run then moves on." + asks
        )
    if sampling and not sampler:
        return (
            f"{sampling} step(s) ask for a model through MCP sampling, and this client declared "
            "no sampling capability, so they fail now (they would wait out their timeout). "
            + SAMPLING_ALTERNATIVES
            + f"; then workflow_resume('{rid}')."
        )
    if sampling:
        return (
            f"{sampling} step(s) wait for your model: call workflow_status('{rid}') to answer them."
        )
    if run.status is RunStatus.SUCCEEDED:
        return f"Done. Call workflow_result('{rid}') for every output and the metrics."
    if run.status is RunStatus.FAILED:
        return (
            f"The run failed. Call workflow_result('{rid}') for the error analysis and recovery plan; "
            f"fix the cause, then workflow_resume('{rid}') re-runs only what did not finish."
        )
    if run.status in (RunStatus.INTERRUPTED, RunStatus.CANCELLED, RunStatus.WAITING):
        return (
            f"The run is {run.status.value}. workflow_resume('{rid}') continues it; committed steps "
            "are not run again."
        )
    return f"The run is in progress: call workflow_status('{rid}', wait_s=30) to wait for progress."
