"""Why a run cannot be taken by this process: it runs elsewhere, or changed under us."""

from __future__ import annotations

from tutti_mcp.engine.errors import RunStateError
from tutti_mcp.memory.runs.owner import current_owner
from tutti_mcp.memory.runs.records import Claim, RunStatus


def running_elsewhere(run_id: str, owner: str | None) -> RunStateError:
    return RunStateError(
        f"run {run_id} is running in another process ({owner}); wait for it or stop it there"
    )


def lost_claim(run_id: str, claim: Claim) -> RunStateError:
    """The error for a claim that another process (or task) won."""
    if claim.status is RunStatus.RUNNING:
        if claim.owner == current_owner():
            return RunStateError(f"run {run_id} is already running in this process")
        return running_elsewhere(run_id, claim.owner)
    return RunStateError(  # it changed between our look and our claim, and is not running
        f"run {run_id} became {claim.status.value} while this process was resuming it; check it "
        f"(workflow_status or `tutti show {run_id}`) before resuming it again"
    )
