"""Client stages: a stage that runs on the client (`run: client`, or a model stage when
model steps go to the client) hands its items to the calling agent in batches, one client
task per batch.

The pipeline step does not wait inside a live task. Its client stage collects the items
that reach it; once a batch is full (or the source is through) the source stops, what is
in flight drains, and the step is handed to the client like any client step (`waiting`,
its request durable) with ONE task listing the batch's items. The answer (step_complete,
`tutti complete`) is checked here, each item's completion of the stage is committed as
its pipeline row, and the step runs again: it resumes from the committed rows, so the
answered items go on to the later stages and the next batch is collected. One mechanism
serves the answer in this process, in another process and after a restart; a run
interrupted while waiting hands the same batch again, since its items are still where the
request says.

An answer is a JSON list of outputs in the order of the task's items, or an object keyed
by item index; `{"error": "..."}` in an item's place reports that item failed, and it goes
through the stage's retries (a later batch) and then the dead letters like any failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tutti_mcp.engine.errors import StepError, StepNotWaiting, StepOutputRejected
from tutti_mcp.engine.modes.pipeline.items import Work
from tutti_mcp.engine.modes.pipeline.spec import PipelineSpec
from tutti_mcp.engine.outputs import shape_output
from tutti_mcp.memory.runs.pipeline_rows import ItemRow, ItemState, PipelineSnapshot
from tutti_mcp.memory.runs.records import ClientRequest, StepRecord, StepStatus
from tutti_mcp.memory.runs.store import RunStore

DEFAULT_BATCH = 10  # items per client task when the stage gives no `batch`
MAX_CLIENT_BATCH = 50  # a client task lists every item's prompt: keep it readable


@dataclass(frozen=True)
class Parked:
    """An item waiting at a client stage, with what the client is to do for it."""

    work: Work
    prompt: str
    system: str | None
    hints: dict[str, Any]  # thinking, model hint: from the item's own client request


@dataclass(frozen=True)
class ItemFailed:
    error: str


@dataclass(frozen=True)
class BatchAnswer:
    """A client's answer to a batch, checked: per item of the task, its output or failure."""

    stage: int
    items: list[dict[str, Any]]  # the task's items: item_index, attempt
    results: list[Any]  # an output, or ItemFailed


def batch_request(
    run_id: str, sid: str, p: PipelineSpec, stage: int, batch: list[Parked]
) -> ClientRequest:
    """The client task of one batch."""
    st = p.stages[stage]
    first = batch[0].hints
    n = len(batch)
    systems = {b.system for b in batch}
    shared = systems.pop() if len(systems) == 1 else None
    shape = "a JSON value" if st.output == "json" else "text"
    keys = ", ".join(f'"{b.work.index}": ...' for b in batch[:2])
    lines = [
        f"Pipeline step {sid!r}, stage {st.id!r}: do the task below for each of these {n} "
        f"item(s), one answer per item ({shape} each).",
        f"Answer with ONE step_complete(run_id='{run_id}', step_id='{sid}', output=[...]): a "
        f"JSON list of exactly {n} outputs in the order the items are listed (or an object "
        f"keyed by item index: {{{keys}{', ...' if n > 2 else ''}}}). For an item you cannot "
        'do, put {"error": "why"} in its place: it is retried or set aside, the others go on.',
    ]
    for b in batch:
        lines.append(f"\n## Item {b.work.index}")
        if shared is None and b.system:
            lines.append(f"(system for this item: {b.system})")
        lines.append(b.prompt)
    return {
        "step_id": sid,
        "instructions": "\n".join(lines),
        "system": shared,
        "inputs": {
            "stage": st.id,
            "items": [{"item_index": b.work.index, "attempt": b.work.attempts + 1} for b in batch],
        },
        "thinking": first.get("thinking"),
        "model_hint": first.get("model_hint"),
        "output": "json",
        "attempt": 1,
        "idempotency_key": f"{run_id}:{sid}.{st.id}[{batch[0].work.index}..]",
    }


def _task(p: PipelineSpec, request: ClientRequest) -> tuple[int, list[dict[str, Any]]]:
    inputs = request.get("inputs") or {}
    return p.stage_ids.index(inputs["stage"]), list(inputs["items"])


def is_pending(p: PipelineSpec, request: ClientRequest, snap: PipelineSnapshot) -> bool:
    """Whether the batch of `request` still waits for its answer: each of its items is
    committed at the stage, after as many attempts as the request says came before."""
    stage, items = _task(p, request)
    for it in items:
        row = snap.rows.get(it["item_index"])
        if row is None or row.state is not ItemState.MOVING or row.stage != stage:
            return False
        if row.attempts != it["attempt"] - 1:
            return False
    return bool(items)


def check_answer(
    sid: str, p: PipelineSpec, request: ClientRequest, output: Any, error: str | None
) -> BatchAnswer:
    """The answer, item by item; StepOutputRejected saying the expected shape when it
    cannot be taken (nothing is recorded then)."""
    stage, items = _task(p, request)
    indices = [it["item_index"] for it in items]
    n = len(indices)
    if error is not None:  # the whole batch failed
        return BatchAnswer(stage, items, [ItemFailed(error)] * n)
    expected = (
        f"this task lists {n} item(s) (item_index {_span(indices)}): answer output=[...] with "
        f"exactly {n} outputs in that order, or an object keyed by item index "
        f'({{"{indices[0]}": ...}}); {{"error": "why"}} in an item\'s place reports it failed'
    )
    value = output
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise StepOutputRejected(sid, f"the answer is not JSON; {expected}") from None
    if isinstance(value, dict):
        keyed = {str(k): v for k, v in value.items()}
        want = [str(i) for i in indices]
        missing = [k for k in want if k not in keyed]
        extra = [k for k in keyed if k not in want]
        if missing or extra:
            why = f"missing item(s) {', '.join(missing)}" if missing else ""
            why += ("; " if why else "") + (f"no item(s) {', '.join(extra)}" if extra else "")
            raise StepOutputRejected(sid, f"the answer has {why}; {expected}")
        values = [keyed[k] for k in want]
    elif isinstance(value, list):
        if len(value) != n:
            raise StepOutputRejected(
                sid, f"the answer is a list of {len(value)} output(s); {expected}"
            )
        values = value
    else:
        raise StepOutputRejected(sid, f"the answer is a {type(value).__name__}; {expected}")
    step = p.stages[stage].step
    results: list[Any] = []
    for index, v in zip(indices, values, strict=True):
        if isinstance(v, dict) and set(v) == {"error"} and isinstance(v["error"], str):
            results.append(ItemFailed(v["error"]))
            continue
        try:
            results.append(shape_output(step, v))
        except StepError as exc:
            raise StepOutputRejected(sid, f"item {index}: {exc}; {expected}") from None
    return BatchAnswer(stage, items, results)


def _span(indices: list[int]) -> str:
    if indices == list(range(indices[0], indices[0] + len(indices))) and len(indices) > 2:
        return f"{indices[0]} to {indices[-1]}"
    return ", ".join(map(str, indices))


async def record_answer(
    store: RunStore, run_id: str, sid: str, p: PipelineSpec, answer: BatchAnswer
) -> None:
    """Commit each item's completion of the stage (one store transaction): answered items
    move past it; failed ones stay for a later batch while they have retries, else become
    dead letters. StepNotWaiting when the batch was answered already."""
    snap = await store.load_pipeline(run_id, sid)
    stage = answer.stage
    st = p.stages[stage]
    rows: list[ItemRow] = []
    done = dead = retried = 0
    for it, result in zip(answer.items, answer.results, strict=True):
        row = snap.rows.get(it["item_index"])
        if row is None or row.state is not ItemState.MOVING or row.stage != stage:
            raise StepNotWaiting(run_id, sid, "answered already (this batch)")
        state: dict[str, Any] = dict(row.value or {})
        attempt = it["attempt"]
        if not isinstance(result, ItemFailed):
            state["out"] = [*state.get("out", []), result]
            rows.append(ItemRow(row.item, stage + 1, ItemState.MOVING, state))
            done += 1
        elif attempt > st.retries:
            error = f"the client reported: {result.error}"
            rows.append(ItemRow(row.item, stage, ItemState.DEAD, state, error, attempt))
            dead += 1
        else:
            rows.append(ItemRow(row.item, stage, ItemState.MOVING, state, attempts=attempt))
            retried += 1
    mark = snap.mark
    mark.dead += dead
    figures = (mark.stats.get("stages") or [])[stage : stage + 1]
    for f in figures:  # the stage's figures count the answer at once
        f["done"] = f.get("done", 0) + done
        f["dead"] = f.get("dead", 0) + dead
        f["retries"] = f.get("retries", 0) + retried
        f["waiting"] = 0
    await store.commit_pipeline(run_id, sid, rows, mark, 0)


async def answer_stored(
    store: RunStore,
    run_id: str,
    rec: StepRecord,
    p: PipelineSpec,
    output: Any,
    error: str | None,
) -> None:
    """The answer to a batch of a run that no process here executes: its items are
    committed, and the step is set back to pending, so the process executing the run (its
    watcher) or the next resume runs it on."""
    answer = check_answer(rec.step_id, p, rec.request, output, error)
    await record_answer(store, run_id, rec.step_id, p, answer)
    await store.set_step(run_id, rec.step_id, StepStatus.PENDING)
