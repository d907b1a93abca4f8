"""Pipeline steps in a run's execution: the runner hands a step with `pipeline` here (as it
hands a `workflow` step to ChildSteps), and gets back what Attempts would give it.

The step runs every item to the sink, committing item rows as it goes. Its output is the
items' outputs (output sink) or the sink's summary. When items died (failed a stage after
their retries), the step fails once the others are through, naming them: the run can be
resumed after a fix, and the resume re-drives the dead letters from the stage they died
in; items committed before are not run again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from tutti_mcp.engine.agent_memory import resolve_scope
from tutti_mcp.engine.core import RunCore
from tutti_mcp.engine.errors import ConfigurationError, StepError, TemplateError
from tutti_mcp.engine.execution.attempts import (
    AttemptResult,
    Failed,
    HandedOff,
    StepSetup,
    Succeeded,
)
from tutti_mcp.engine.execution.context import RunContext
from tutti_mcp.engine.execution.ledger import RunLedger
from tutti_mcp.engine.executors.base import StepOutcome
from tutti_mcp.engine.modes.pipeline.client_batches import (
    BatchAnswer,
    batch_request,
    is_pending,
    record_answer,
)
from tutti_mcp.engine.modes.pipeline.items import read_source
from tutti_mcp.engine.modes.pipeline.journal import Journal, JsonlSink, MemorySink, Sink
from tutti_mcp.engine.modes.pipeline.preflight import MEMORY_OFF
from tutti_mcp.engine.modes.pipeline.runtime import Runtime, in_flight_bound
from tutti_mcp.engine.modes.pipeline.spec import PipelineSpec
from tutti_mcp.engine.modes.pipeline.stages import CallBase, StageRunner
from tutti_mcp.engine.modes.pipeline.stats import PipelineStats, StageStats
from tutti_mcp.engine.spec import MODEL_KINDS, ExecutorKind, RetryPolicy, Step, WorkflowSpec
from tutti_mcp.engine.templating import render_async
from tutti_mcp.engine.thinking import choose
from tutti_mcp.engine.usage import add_usage
from tutti_mcp.engine.workflow import resolved_executor
from tutti_mcp.memory.files.store import step_author
from tutti_mcp.memory.runs.pipeline_rows import ItemState, PipelineSnapshot
from tutti_mcp.memory.runs.records import ClientRequest, EventKind

DEAD_SHOWN = 5  # dead letters named in the step's error


@dataclass(frozen=True)
class Handoff:
    """What the pipeline gives back when a batch waits for the client."""

    request: ClientRequest


class PipelineSteps:
    def __init__(
        self, ctx: RunContext, ledger: RunLedger, spec: WorkflowSpec, workspace: Path
    ) -> None:
        self.ctx, self.ledger, self.spec, self.workspace = ctx, ledger, spec, workspace

    async def run(
        self,
        step: Step,
        setup: StepSetup,
        deps: tuple[str, ...],
        *,
        prior_attempts: int,
        spent: dict[str, Any] | None,
        context: Mapping[str, Any] | None = None,
    ) -> AttemptResult:
        """Run (or resume) the pipeline to its end (as Attempts.run runs a step; its items
        retry as their stages say, so the step itself is not retried)."""
        p = step.pipeline
        assert p is not None
        sid, attempt = step.id, prior_attempts + 1
        started = self.ctx.config.clock()
        # handed to the client before: the step runs on after a batch (or was interrupted
        # while one waited), and its dead letters stay dead until the step has failed
        asked = self.ledger.run.steps[sid].request
        self.ledger.step_started(sid, attempt, started, lasting=True)
        try:
            snap = await self.ctx.store.load_pipeline(self.ledger.run_id, sid)
            if asked and is_pending(p, asked, snap):  # the same batch, as it was handed
                return HandedOff(asked, attempt, started)
            output, usage, dead = await self._run(
                sid, p, context or self.ledger.ctx, snap, redrive=not asked
            )
        except (StepError, TemplateError, ConfigurationError) as exc:
            err = exc if isinstance(exc, StepError) else StepError(str(exc), retryable=False)
            return Failed(err, attempt, started, spent)
        if isinstance(output, Handoff):
            return HandedOff(output.request, attempt, started)
        if dead:
            return Failed(dead_letters_error(dead), attempt, started, add_usage(spent, usage))
        return Succeeded(output, StepOutcome(output, usage, None), attempt, started, spent)

    async def answer(self, step: Step, answer: BatchAnswer, core: RunCore) -> None:
        """The client answered the step's batch (checked by ClientSteps.check): commit its
        items' completions; the step is then ready to run on."""
        assert step.pipeline is not None
        await record_answer(self.ctx.store, self.ledger.run_id, step.id, step.pipeline, answer)
        core.again(step.id)

    async def _run(
        self,
        sid: str,
        p: PipelineSpec,
        run_ctx: Mapping[str, Any],
        snap: PipelineSnapshot,
        *,
        redrive: bool,
    ) -> tuple[Any, dict[str, Any] | None, list[dict[str, Any]]]:
        store, run_id = self.ctx.store, self.ledger.run_id
        runners = self._runners(sid, p, run_ctx)
        before = snap.mark.stats.get("stages") or []
        for r, figures in zip(runners, before, strict=False):
            r.stats.carry(figures, dead=not redrive)
        stats = PipelineStats([r.stats for r in runners], in_flight_bound(runners, p.buffer))
        sink = await self._sink(sid, p, run_ctx, snap.mark.sink_offset)
        keep = self.ctx.config.pipeline_keep
        journal = Journal(store, run_id, sid, snap, sink, stats, keep, redrive=redrive)
        shell = self.ctx.executors.get(ExecutorKind.SHELL)
        items = read_source(p.source, run_ctx, self.workspace, getattr(shell, "policy", None))
        runtime = Runtime(
            runners,
            journal,
            stats,
            buffer=p.buffer,
            ordered=p.ordered,
            progress=lambda snapshot: self.ledger.emit(EventKind.PIPELINE_PROGRESS, sid, snapshot),
        )
        try:
            await runtime.run(items, snap)
        finally:
            sink.close()
        usage = None
        for r in runners:
            usage = add_usage(usage, r.usage)
        if any(runtime.parked.values()):  # items wait for the client: hand over a batch
            request = await self._batch(sid, p, runtime, journal)
            self.ledger.emit(EventKind.PIPELINE_PROGRESS, sid, stats.snapshot())
            return Handoff(request), usage, []
        after = await store.load_pipeline(run_id, sid)
        dead = [
            {
                "item_index": r.item,
                "stage": p.stage_ids[r.stage],
                "error": r.error,
                "attempts": r.attempts,
                "item": (r.value or {}).get("item"),
            }
            for r in after.rows.values()
            if r.state is ItemState.DEAD
        ]
        if sink.keeps_outputs:
            sunk = [r for r in after.rows.values() if r.state is ItemState.SUNK]
            if not p.ordered:  # as they reached the sink (a resume's items after the others)
                sunk.sort(key=lambda r: r.pos or 0)
            output: Any = [r.value for r in sunk]
        else:
            output = {**sink.summary(), "items": after.mark.sunk, "dead": len(dead)}
        self.ledger.emit(EventKind.PIPELINE_PROGRESS, sid, stats.snapshot())
        return output, usage, dead

    def _runners(self, sid: str, p: PipelineSpec, run_ctx: Mapping[str, Any]) -> list[StageRunner]:
        spec, cfg = self.spec, self.ctx.config
        ids = {s.id: i for i, s in enumerate(p.stages)}
        base = CallBase(self.ledger.run_id, sid, self.workspace, spec.name)
        slot = anyio.CapacityLimiter(1)  # long renders off the loop, one at a time
        runners = []
        for i, stage in enumerate(p.stages):
            kind = resolved_executor(stage.step, spec, cfg.model_executor)
            executor = self.ctx.executors.get(kind)
            model_step = stage.step.executor in MODEL_KINDS
            thinking = choose(stage.step, spec, 1) if model_step else None
            model = cfg.models.resolve(stage.model or spec.defaults.model) if model_step else None
            d = spec.defaults.retry
            runner = StageRunner(
                i,
                stage,
                kind,
                executor,
                ids,
                run_ctx,
                base,
                retry=RetryPolicy(
                    attempts=stage.retries + 1,
                    backoff_s=d.backoff_s,
                    max_backoff_s=d.max_backoff_s,
                    jitter=d.jitter,
                ),
                timeout_s=stage.timeout or spec.defaults.timeout,
                thinking=thinking,
                model=model,
                stats=StageStats(stage.id),
                rand=cfg.rand,
                render_slot=slot,
            )
            if executor is None and not runner.fast:
                raise ConfigurationError(
                    f"pipeline stage {stage.id!r} runs on {kind.value}, which is not "
                    "available here (see `tutti plan` for what to configure)"
                )
            runners.append(runner)
        return runners

    async def _batch(
        self, sid: str, p: PipelineSpec, runtime: Runtime, journal: Journal
    ) -> ClientRequest:
        """The client task of the next batch: at the stage that holds the earliest item
        (ordered output waits for it), its `batch` earliest items. Every waiting item is
        committed where it stands: the answer (and a resume) finds the batch there, and
        the next execution does not redo the stages before for the others."""
        parked = runtime.parked
        i = min(
            (i for i in parked if parked[i]), key=lambda i: min(t.work.index for t in parked[i])
        )
        waiting = sorted(parked[i], key=lambda t: t.work.index)
        batch = waiting[: runtime.runners[i].batch]
        for held in parked.values():
            for t in held:
                journal.moved(t.work)
        st = runtime.stats.stages[i]
        st.waiting, st.queued = len(waiting), 0  # handed now, or in a later batch
        await journal.commit()
        return batch_request(self.ledger.run_id, sid, p, i, batch)

    async def _sink(
        self, sid: str, p: PipelineSpec, run_ctx: Mapping[str, Any], offset: int
    ) -> Sink:
        if p.sink.jsonl is not None:
            try:
                rel = await render_async(p.sink.jsonl, run_ctx)
            except TemplateError as exc:
                raise StepError(f"pipeline.sink.jsonl: {exc}", retryable=False) from None
            return JsonlSink(rel, self.workspace, offset)
        if p.sink.memory is not None:
            files = self.ctx.config.memory
            if files is None:
                raise ConfigurationError(MEMORY_OFF)
            try:
                path = await render_async(p.sink.memory, run_ctx)
            except TemplateError as exc:
                raise StepError(f"pipeline.sink.memory: {exc}", retryable=False) from None
            scope = resolve_scope(p.sink.scope, self.spec.name, self.workspace)
            author = step_author(self.ledger.run_id, sid)
            sink = MemorySink(files, path, scope, author)
            await sink.open(offset)
            return sink
        return Sink()


def dead_letters_error(dead: list[dict[str, Any]]) -> StepError:
    shown = "; ".join(
        f"item {d['item_index']} at stage {d['stage']!r} after {d['attempts']} attempt(s): "
        f"{d['error']}"
        for d in dead[:DEAD_SHOWN]
    )
    more = f" (and {len(dead) - DEAD_SHOWN} more)" if len(dead) > DEAD_SHOWN else ""
    return StepError(
        f"{len(dead)} item(s) failed a stage after their retries (dead letters): {shown}{more}. "
        "The other items are committed; fix the cause and resume the run (workflow_resume, "
        "or `tutti resume RUN_ID`) to run the dead letters again from the stage they failed",
        retryable=False,
    )
