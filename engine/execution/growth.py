"""How a run grows while it executes: a `foreach` step adds one step per item (its
instances), each durable with a stable id, run like any other step; the step itself is
made ready again once they have all settled, and its output is theirs in item order.

The instances are committed (their ids and items) before any of them runs, so a resume
rebuilds exactly the same instances from the store, whatever the source says by then (a
glob's files may have changed), and runs only those that had not committed.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.groups import Instance, foreach_items, instances
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import StepRecord

ERRORS_SHOWN = 5  # instances' errors quoted in the step's own error


class Growth:
    """The steps one run added at run time: their parent, their scope and their order."""

    def __init__(self, wf: Workflow, core: RunCore) -> None:
        self.wf = wf  # the run's own copy (Workflow.live): it grows
        self.core = core
        self.parent: dict[str, str] = {}  # added step -> the step it belongs to
        self.children: dict[str, list[str]] = {}  # parent -> its added steps, in order
        self.scopes: dict[str, dict[str, Any]] = {}

    def restore(self, steps: Mapping[str, StepRecord]) -> None:
        """Add again the steps an earlier execution added (before `RunCore.restore`)."""
        added: dict[str, list[str]] = {}
        for sid, rec in steps.items():
            if rec.parent is not None and rec.parent in self.wf.groups:
                added.setdefault(rec.parent, []).append(sid)
                self.scopes[sid] = rec.scope or {}
        for parent, ids in added.items():
            self._add(parent, ids)

    async def items(
        self, group: str, context: dict[str, Any], workspace: Path, limit: int
    ) -> list[Instance]:
        fe = self.wf.steps[group].foreach
        assert fe is not None
        found = await foreach_items(fe, context, workspace, limit)
        return await instances(group, fe, found, context)

    def add(self, group: str, made: list[Instance]) -> None:
        """The instances are durable: make them steps of this run, ready to run."""
        for inst in made:
            self.scopes[inst.step_id] = inst.scope()
        self._add(group, [inst.step_id for inst in made])

    def _add(self, group: str, ids: list[str]) -> None:
        wf = self.wf
        step, kind, deps = wf.steps[group], wf.executors[group], wf.deps[group]
        model = wf.model_ids.get(group)
        for sid in ids:
            wf.steps[sid] = step.model_copy(update={"id": sid, "foreach": None, "when": None})
            wf.executors[sid] = kind
            wf.deps[sid] = deps  # what executors read as its inputs; all committed already
            if model is not None:
                wf.model_ids[sid] = model
            self.parent[sid] = group
        self.children.setdefault(group, []).extend(ids)
        self.core.add_steps(group, ids)

    def context(self, sid: str, ctx: dict[str, Any]) -> Mapping[str, Any]:
        """What step `sid`'s templates read: the run's context, and its own item."""
        scope = self.scopes.get(sid)
        return ctx if scope is None else ChainMap(scope, ctx)

    def collected(
        self, group: str, steps: Mapping[str, StepRecord]
    ) -> tuple[list[Any], str | None]:
        """The instances' outputs in item order (None for one that has none), and what went
        wrong with those that failed or were skipped (None if none did)."""
        outputs: list[Any] = []
        failed: list[str] = []
        for sid in self.children.get(group, []):
            rec = steps[sid]
            if rec.status.has_output:
                outputs.append(rec.output)
            else:
                outputs.append(None)
                failed.append(f"{sid}: {rec.error or rec.skip_reason or rec.status.value}")
        if not failed:
            return outputs, None
        shown = "; ".join(failed[:ERRORS_SHOWN]) + ("; ..." if len(failed) > ERRORS_SHOWN else "")
        return outputs, f"{len(failed)} of {len(outputs)} instances have no output: {shown}"

    def started_at(self, group: str, steps: Mapping[str, StepRecord]) -> float | None:
        starts = [
            t for sid in self.children.get(group, []) if (t := steps[sid].started_at) is not None
        ]
        return min(starts, default=None)
