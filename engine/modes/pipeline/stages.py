"""One stage's work on its items: through the engine's executors (a StepCall per item,
under the stage's timeout, retried with backoff while the error is retryable, then a dead
letter), or, for builtin transforms, on the event loop without a StepCall (the same
renders with the same meaning, in a batch: a trivial stage costs microseconds per item).

A model stage that gets a 429 or an overloaded answer backs off as a whole: one gate per
stage closes for a while and every worker of the stage waits at it, instead of each item
retrying on its own schedule (a thundering herd)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine import template_limits as lim
from tutti_mcp.engine.errors import ConfigurationError, StepError, StepErrorKind, TemplateError
from tutti_mcp.engine.execution.attempts import step_error
from tutti_mcp.engine.executors.base import StepCall, StepExecutor
from tutti_mcp.engine.models import ModelInfo
from tutti_mcp.engine.modes.pipeline.client_batches import DEFAULT_BATCH, MAX_CLIENT_BATCH, Parked
from tutti_mcp.engine.modes.pipeline.items import ItemContext, Work
from tutti_mcp.engine.modes.pipeline.spec import Stage
from tutti_mcp.engine.modes.pipeline.stats import StageStats
from tutti_mcp.engine.outputs import shape_output, shaped
from tutti_mcp.engine.spec import BuiltinOp, ExecutorKind, RetryPolicy
from tutti_mcp.engine.template_paths import unwrap_condition
from tutti_mcp.engine.templating import (
    INLINE_CPU_SECONDS,
    INLINE_OPS,
    evaluate,
    render,
    render_value,
)
from tutti_mcp.engine.thinking import ThinkingChoice
from tutti_mcp.engine.usage import add_usage

FAST_OPS = frozenset({BuiltinOp.TEMPLATE, BuiltinOp.JSON, BuiltinOp.PASS, BuiltinOp.PARSE_JSON})
OVERLOADED = re.compile(r"API error (429|529|503)\b")
MAX_OVERLOADS = 10  # 429s in a row for one item before it counts as a failed attempt
BACKOFF_S = (0.5, 60.0)  # the stage's first and longest pause on 429 / overloaded


@dataclass(frozen=True)
class CallBase:
    """What every item's StepCall of the pipeline shares."""

    run_id: str
    step_id: str  # the pipeline step
    workspace: Path
    workflow: str


@dataclass
class ItemCall(StepCall):
    """A StepCall for one item of a stage: its idempotency key names the item."""

    key: str = ""

    @property
    def idempotency_key(self) -> str:
        return self.key


class Backoff:
    """The stage's gate: closed for a while after a 429 or overloaded answer."""

    def __init__(self, rand: Callable[[], float]) -> None:
        self.until = 0.0
        self.level = 0
        self.rand = rand

    async def wait(self) -> None:
        while (delay := self.until - time.monotonic()) > 0:
            await anyio.sleep(delay)

    def hit(self) -> bool:
        """Close the gate, unless it is closed already (the answers of calls made before
        it closed say nothing new). True when this closed it."""
        now = time.monotonic()
        if now < self.until:
            return False
        first, most = BACKOFF_S
        delay = min(most, first * 2.0**self.level) * (0.5 + self.rand() / 2)
        self.level = min(self.level + 1, 10)
        self.until = now + delay
        return True

    def passed(self) -> None:
        self.level = 0


class StageRunner:
    def __init__(
        self,
        index: int,
        stage: Stage,
        kind: ExecutorKind,
        executor: StepExecutor | None,
        ids: Mapping[str, int],
        run_ctx: Mapping[str, Any],
        base: CallBase,
        *,
        retry: RetryPolicy,
        timeout_s: float,
        thinking: ThinkingChoice | None,
        model: ModelInfo | None,
        stats: StageStats,
        rand: Callable[[], float],
        render_slot: anyio.CapacityLimiter,
    ) -> None:
        self.index, self.stage, self.step, self.kind = index, stage, stage.step, kind
        self.executor = executor
        self.ids, self.run_ctx, self.base = ids, run_ctx, base
        self.retry, self.timeout_s = retry, timeout_s
        self.thinking, self.model = thinking, model
        self.stats, self.rand = stats, rand
        self.gate = Backoff(rand)
        self.render_slot = render_slot
        self.usage: dict[str, Any] | None = None  # what its model calls spent
        self.fast = kind is ExecutorKind.BUILTIN and self.step.builtin_op in FAST_OPS
        self.when = None if stage.when is None else unwrap_condition(stage.when)
        self.client = kind is ExecutorKind.CLIENT  # its items wait for the client, in batches
        self.batch = min(stage.batch or DEFAULT_BATCH, MAX_CLIENT_BATCH)

    # -- builtin transforms, on the loop ---------------------------------------------------
    def run_fast(self, works: list[Work]) -> list[Work]:
        """Do the stage for each work on the loop; returns those that need the slow path (a
        render over the inline budget, or an error another attempt may fix)."""
        later: list[Work] = []
        i, stats = self.index, self.stats
        t0 = time.perf_counter()
        n = 0
        for w in works:
            if w.error is not None or len(w.outs) != i:
                continue  # dead already, or past this stage (resumed)
            n += 1
            try:
                budget = lim.Budget(INLINE_OPS, INLINE_CPU_SECONDS)
                if self.when is not None and not self._holds(w, budget):
                    self._skip(w)
                    continue
                w.outs.append(self._op(w, budget))
                stats.done += 1
            except (TemplateError, StepError) as exc:
                err = step_error(exc, self.timeout_s, 1)
                if budget.spent or (err.retryable and self.stage.retries):
                    later.append(w)
                else:
                    self._dead(w, err, 1)
        if n:
            stats.latency.add((time.perf_counter() - t0) / n, n)
        return later

    def _holds(self, w: Work, budget: lim.Budget | None = None) -> bool:
        assert self.when is not None
        return bool(evaluate(self.when, ItemContext(w, self.ids, self.run_ctx), budget))

    def _skip(self, w: Work) -> None:
        w.outs.append(w.outs[-1] if w.outs else w.item)  # the item passes through
        w.skipped |= 1 << self.index
        self.stats.skipped += 1

    def _op(self, w: Work, budget: lim.Budget | None = None) -> Any:
        step = self.step
        ctx = ItemContext(w, self.ids, self.run_ctx)
        op = step.builtin_op
        if op is BuiltinOp.TEMPLATE:
            value: Any = render(step.args or "", ctx, budget)
        elif op is BuiltinOp.JSON or (op is BuiltinOp.PASS and step.value is not None):
            value = render_value(step.value, ctx, budget)
        elif op is BuiltinOp.PASS:  # the previous stage's output, or the item
            value = w.outs[-1] if w.outs else w.item
        else:
            text = render(step.args or "", ctx, budget)
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise StepError(
                    f"not valid JSON: {exc}", retryable=False, kind=StepErrorKind.PARSE
                ) from None
        return shape_output(step, value) if step.output == "json" else value

    def _dead(self, w: Work, err: StepError, attempts: int) -> None:
        w.error = str(err)
        w.attempts = attempts
        self.stats.dead += 1

    # -- one item at a time, through an executor ---------------------------------------------
    async def run_one(self, w: Work) -> None:
        """Do the stage for one work: its output appended, or the work dead."""
        if w.error is not None or len(w.outs) != self.index:
            return
        t0 = time.perf_counter()
        attempt = overloads = 0
        while True:
            await self.gate.wait()
            attempt += 1
            try:
                if self.when is not None and not await self._holds_async(w):
                    self._skip(w)
                    return
                w.outs.append(await self._attempt(w, attempt))
                self.gate.passed()
                self.stats.done += 1
                self.stats.latency.add(time.perf_counter() - t0)
                return
            except Exception as exc:  # the item boundary: its error kills the item, not the run
                err = step_error(exc, self.timeout_s, attempt)
            if err.usage:
                self.usage = add_usage(self.usage, err.usage)
            if OVERLOADED.search(str(err)) and overloads < MAX_OVERLOADS:
                overloads += 1
                attempt -= 1  # the stage waits; the item has not had its turn
                if self.gate.hit():
                    self.stats.backoffs += 1
                continue
            if not err.retryable or attempt > self.stage.retries:
                self._dead(w, err, attempt)
                return
            self.stats.retries += 1
            await anyio.sleep(self.retry.delay(attempt, self.rand()))

    async def _holds_async(self, w: Work) -> bool:
        budget = lim.Budget(INLINE_OPS, INLINE_CPU_SECONDS)
        try:
            return self._holds(w, budget)
        except TemplateError:
            if not budget.spent:
                raise
        return bool(  # over the inline budget: again off the loop, with the full budget
            await anyio.to_thread.run_sync(
                partial(self._holds, w), abandon_on_cancel=True, limiter=self.render_slot
            )
        )

    async def _attempt(self, w: Work, attempt: int) -> Any:
        if self.fast:  # over the inline budget: the same op, off the loop, full budget
            return await anyio.to_thread.run_sync(
                partial(self._op, w, None), abandon_on_cancel=True, limiter=self.render_slot
            )
        assert self.executor is not None
        with anyio.fail_after(self.timeout_s):
            outcome = await self.executor.execute(self._call(w, attempt))
        value = shaped(self.step, outcome)
        usage = outcome.usage
        if outcome.cost_usd is not None:
            usage = {**(usage or {}), "cost_usd": outcome.cost_usd}
        if usage:
            self.usage = add_usage(self.usage, usage)
        return value

    def _call(self, w: Work, attempt: int) -> ItemCall:
        b = self.base
        return ItemCall(
            run_id=b.run_id,
            step=self.step,
            attempt=attempt,
            context=ItemContext(w, self.ids, self.run_ctx),
            deps=(),
            timeout_s=self.timeout_s,
            workspace=b.workspace,
            thinking=self.thinking,
            model=self.model,
            workflow=b.workflow,
            key=f"{b.run_id}:{b.step_id}.{self.stage.id}[{w.index}]",
        )

    # -- a client stage: its items wait for the client (client_batches) ---------------------
    async def park(self, w: Work) -> Parked | None:
        """The item's task for the client (its prompt rendered), or None when the item does
        not wait: `when` skips it, or its task cannot be rendered (it is a dead letter)."""
        assert self.executor is not None
        attempt = w.attempts + 1
        try:
            if self.when is not None and not await self._holds_async(w):
                self._skip(w)
                return None
            outcome = await self.executor.execute(self._call(w, attempt))
        except (TemplateError, StepError, ConfigurationError) as exc:
            self._dead(w, step_error(exc, self.timeout_s, attempt), attempt)
            return None
        req: Mapping[str, Any] = outcome.handoff or {}
        hints = {k: req.get(k) for k in ("thinking", "model_hint")}
        return Parked(w, str(req.get("instructions", "")), req.get("system"), hints)
