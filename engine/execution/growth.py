"""How a run grows while it executes: one mechanism for the steps added at run time.

- A `foreach` step adds one step per item (its instances: `review[0]`, or `review[KEY]`),
  all at once; its output is theirs, in item order.
- A `loop` step adds one iteration of its steps at a time (`draft#1`, `critique#1`), and
  after each iteration reads `until`: the loop ends when it holds (or at
  `max_iterations`), with the last iteration's outputs as its output; else the next
  iteration is added.

Added steps are committed (their ids and scopes) before any of them runs and then run like
any other step: durable, retried, resumed. The step that added them is made ready again
once they have all settled (RunCore.add_steps). A resume rebuilds exactly the same steps
from the store, whatever the sources say by then (a glob's files may have changed), and
runs only those that had not committed; a loop resumes in the iteration it was in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.errors import StepError, TemplateError
from tutti_mcp.engine.execution.ledger import RunLedger
from tutti_mcp.engine.groups import foreach_items, instances
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.modes.swarm.runtime import SwarmTurns
from tutti_mcp.engine.modes.swarm.turns import turn_fields
from tutti_mcp.engine.plan import Plan, make_plan
from tutti_mcp.engine.templating import evaluate_async
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import StepRecord, StepStatus

ERRORS_SHOWN = 5  # instances' errors quoted in the step's own error


class Overlay(Mapping[str, Any]):
    """The run's template context with a step's own names over it (its item; a loop
    iteration's steps by name, and `loop`), without copying the run's context."""

    __slots__ = ("ctx", "local")

    def __init__(self, local: dict[str, Any], ctx: Mapping[str, Any]) -> None:
        self.local, self.ctx = local, ctx

    def __getitem__(self, key: str) -> Any:
        return self.local[key] if key in self.local else self.ctx[key]

    def __contains__(self, key: object) -> bool:
        return key in self.local or key in self.ctx

    def __iter__(self) -> Iterator[str]:
        yield from self.local
        yield from (k for k in self.ctx if k not in self.local)

    def __len__(self) -> int:
        return len(self.local) + sum(1 for k in self.ctx if k not in self.local)


@dataclass(frozen=True, slots=True)
class Done:
    """What a step that added steps commits once they have settled."""

    output: Any
    status: StepStatus
    error: str | None
    started: float | None


class Growth:
    """The steps one run added at run time: their parent, their scope and their order."""

    def __init__(self, wf: Workflow, core: RunCore, ledger: RunLedger) -> None:
        self.wf = wf  # the run's own copy (Workflow.live): it grows
        self.core = core
        self.ledger = ledger
        self.parent: dict[str, str] = {}  # added step -> the step it belongs to
        self.children: dict[str, list[str]] = {}  # parent -> its added steps, in order
        self.scopes: dict[str, dict[str, Any]] = {}
        self.iteration: dict[str, int] = {}  # loop step -> its latest iteration
        self._plans: dict[str, Plan] = {}  # loop step -> its steps' plan
        swarms = {g: sw for g in wf.groups if (sw := wf.steps[g].swarm) is not None}
        self.swarms = SwarmTurns(swarms)

    # -- adding ------------------------------------------------------------------------------
    def restore(self, steps: Mapping[str, StepRecord]) -> None:
        """Add again the steps an earlier execution added (before `RunCore.restore`)."""
        added: dict[str, list[str]] = {}
        for sid, rec in steps.items():
            if rec.parent is not None and rec.parent in self.wf.groups:
                added.setdefault(rec.parent, []).append(sid)
                self.scopes[sid] = rec.scope or {}
        for parent, ids in added.items():
            if parent in self.swarms.specs:
                self._add(parent, [(sid, ()) for sid in ids], self.wf.bodies[parent])
            elif parent in self.wf.bodies:
                for k in sorted({self.scopes[sid]["iteration"] for sid in ids}):
                    self._add_iteration(parent, k)
            else:
                self._add(parent, [(sid, ()) for sid in ids])

    async def expand(self, sid: str, workspace: Path, limit: int) -> Done | None:
        """A step's turn to add its steps (committed before this returns). Done when it
        has none to add; StepError when its items cannot be read."""
        if sid in self.swarms.specs:
            return await self._swarm_next(sid)
        if sid in self.wf.bodies:
            await self._commit_iteration(sid, 1)
            return None
        fe = self.wf.steps[sid].foreach
        assert fe is not None
        ctx = self.ledger.ctx
        made = await instances(sid, fe, await foreach_items(fe, ctx, workspace, limit), ctx)
        if not made:
            return Done([], StepStatus.SUCCEEDED, None, None)
        rows = [(inst.step_id, {"item": inst.item, "item_index": inst.index}) for inst in made]
        await self.ledger.expand(sid, rows)
        self.scopes.update(rows)
        self._add(sid, [(cid, ()) for cid, _ in rows])
        return None

    async def collect(self, sid: str) -> Done | None:
        """Every step `sid` added has settled: what it commits, or None when a loop goes
        on (its next iteration committed and added)."""
        steps = self.ledger.run.steps
        started = min(
            (t for c in self.children.get(sid, []) if (t := steps[c].started_at) is not None),
            default=None,
        )
        if sid in self.swarms.specs:
            done = await self._swarm_next(sid)
            return done if done is None else Done(done.output, done.status, done.error, started)
        if sid not in self.wf.bodies:
            outputs, missing = self._collected(sid, steps)
            status = StepStatus.SUCCEEDED if missing is None else StepStatus.DEGRADED
            return Done(outputs, status, missing, started)
        loop = self.wf.steps[sid].loop
        assert loop is not None
        k = self.iteration[sid]
        try:
            held = bool(await evaluate_async(loop.until, self._loop_context(sid, k)))
        except TemplateError as exc:
            self.ledger.condition(f"{sid}#{k}", loop.until, None)
            raise StepError(f"loop.until of iteration {k}: {exc}", retryable=False) from None
        self.ledger.condition(f"{sid}#{k}", loop.until, held)
        if not held and k < loop.max_iterations:
            await self._commit_iteration(sid, k + 1)
            return None
        last = {inner: steps[f"{inner}#{k}"].output for inner in self.wf.bodies[sid].order}
        if held:
            return Done(last, StepStatus.SUCCEEDED, None, started)
        why = f"`until` did not hold in {k} iterations; the output is the last iteration's"
        return Done(last, StepStatus.DEGRADED, why, started)

    async def _swarm_next(self, sid: str) -> Done | None:
        """A swarm's next batch of turns, committed and added; or its end."""
        got = self.swarms.next(sid, self.children.get(sid, []), self.ledger.run.steps)
        if isinstance(got, tuple):
            return Done(got[0], got[1], got[2], None)
        await self.ledger.expand(sid, got)
        self.scopes.update(got)
        self._add(sid, [(tid, ()) for tid, _ in got], self.wf.bodies[sid])
        return None

    async def _commit_iteration(self, sid: str, k: int) -> None:
        rows = [
            (f"{inner}#{k}", {"iteration": k, "step": inner}) for inner in self.wf.bodies[sid].order
        ]
        await self.ledger.expand(sid, rows)
        self.scopes.update(rows)
        self._add_iteration(sid, k)

    def _add_iteration(self, sid: str, k: int) -> None:
        body = self.wf.bodies[sid]
        self.iteration[sid] = k
        added = [
            (f"{inner}#{k}", tuple(f"{d}#{k}" for d in body.deps[inner])) for inner in body.order
        ]
        self._add(sid, added, body)

    def _add(
        self, group: str, added: list[tuple[str, tuple[str, ...]]], body: Workflow | None = None
    ) -> None:
        wf = self.wf
        outer_deps = wf.deps[group]
        for sid, inner_deps in added:
            if body is None:  # a foreach instance: its step, for one item
                step, kind = wf.steps[group], wf.executors[group]
                model = wf.model_ids.get(group)
                update: dict[str, Any] = {"id": sid, "foreach": None, "when": None}
            elif group in self.swarms.specs:  # an agent's turn
                inner = self.scopes[sid]["agent"]
                step, kind = body.steps[inner], body.executors[inner]
                model = body.model_ids.get(inner)
                update = {"id": sid, **turn_fields(self.scopes[sid])}
            else:  # a loop's step, for one iteration
                inner = self.scopes[sid]["step"]
                step, kind = body.steps[inner], body.executors[inner]
                model = body.model_ids.get(inner)
                update = {"id": sid}
                if inner in body.conditions:  # inside an if block of the loop
                    wf.conditions[sid] = body.conditions[inner]
            wf.steps[sid] = step.model_copy(update=update)
            wf.executors[sid] = kind
            # what executors read as its inputs (`pass`, `merge`): the step's own
            wf.deps[sid] = inner_deps + outer_deps if body is not None else outer_deps
            if group in self.swarms.specs:  # its prompt says what it reads
                wf.deps[sid] = ()
            if model is not None:
                wf.model_ids[sid] = model
            self.parent[sid] = group
        self.children.setdefault(group, []).extend(sid for sid, _ in added)
        self.core.add_steps(group, added)

    # -- reading -----------------------------------------------------------------------------
    def origin(self, sid: str) -> tuple[str | None, str]:
        """(the loop whose step `sid` is an iteration of, that step's id in the loop) or
        (None, the step whose setup `sid` shares: a foreach instance's step, else itself)."""
        parent = self.parent.get(sid)
        if parent is None:
            return None, sid
        if parent in self.swarms.specs:
            return parent, self.scopes[sid]["agent"]
        if parent in self.wf.bodies:
            return parent, self.scopes[sid]["step"]
        return None, parent

    def body_plan(self, loop: str, models: ModelTable) -> tuple[Workflow, Plan]:
        body = self.wf.bodies[loop]
        plan = self._plans.get(loop)
        if plan is None:
            plan = self._plans[loop] = make_plan(body, models)
        return body, plan

    def context(self, sid: str) -> Mapping[str, Any]:
        """What step `sid`'s templates read: the run's context, and its own names."""
        ctx = self.ledger.ctx
        scope = self.scopes.get(sid)
        if scope is None:
            return ctx
        parent = self.parent[sid]
        if parent in self.swarms.specs:  # an agent's turn
            return Overlay({"turn": self.swarms.turn(parent, scope, ctx)}, ctx)
        if "step" not in scope:  # a foreach instance
            return Overlay(scope, ctx)
        return self._loop_context(parent, scope["iteration"])

    def _loop_context(self, sid: str, k: int) -> Overlay:
        """Iteration `k` of loop `sid`: its steps by name, `loop.iteration` and `loop.last`
        (the outputs of iteration k - 1 by step; none in the first)."""
        ctx = self.ledger.ctx
        order = self.wf.bodies[sid].order
        local: dict[str, Any] = {
            inner: ctx[f"{inner}#{k}"] for inner in order if f"{inner}#{k}" in ctx
        }
        last = None
        if k > 1:
            last = {inner: (ctx.get(f"{inner}#{k - 1}") or {}).get("output") for inner in order}
        local["loop"] = {"iteration": k, "last": last}
        return Overlay(local, ctx)

    def _collected(
        self, group: str, steps: Mapping[str, StepRecord]
    ) -> tuple[list[Any], str | None]:
        """The instances' outputs in item order (None for one that has none), and what
        went wrong with those that failed or were skipped (None if none did)."""
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
