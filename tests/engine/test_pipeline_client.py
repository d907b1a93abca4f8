"""Client stages of a pipeline, at the engine: one client task per batch, answered while
no process executes the run (as `tutti complete` does) and carried on by a resume; the
same batch handed again after an interruption; a failed item retried in a later batch,
then a dead letter; dead letters of the run so far are not run again by the batches that
follow, only by a resume after the step failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.engine.test_pipeline import Stages
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import (
    ConfigurationError,
    SpecError,
    StepNotWaiting,
    StepOutputRejected,
)
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, load_spec_file, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio


def engine_on(store: Any, stages: Stages | None = None) -> Engine:
    executors: dict[ExecutorKind, Any] = {
        ExecutorKind.BUILTIN: BuiltinExecutor(),
        ExecutorKind.CLIENT: ClientExecutor(),
        ExecutorKind.SHELL: stages or Stages(),
    }
    config = EngineConfig(rand=lambda: 0.5, model_executor=ExecutorKind.CLIENT)
    return Engine(store, executors, config)


def spec(n: int, stages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "p", "type": "pipeline", "source": list(range(n)), "stages": stages}


ASK = {"id": "ask", "prompt": "Greet ${item}.", "batch": 4}


def handed(run: RunRecord) -> list[int]:
    assert run.status is RunStatus.WAITING, (run.status, run.error)
    return [it["item_index"] for it in run.steps["pipeline"].request["inputs"]["items"]]


async def test_answered_batches_carry_the_run_on_at_each_resume_until_every_item_is_through() -> (
    None
):
    store = await SqliteRunStore.open(":memory:")
    try:
        engine = engine_on(store)
        batches = []
        with anyio.fail_after(20):
            run = await engine.run(spec(10, [ASK, {"id": "tag", "args": "<${ask.output}>"}]))
            while run.status is RunStatus.WAITING:
                batches.append(handed(run))
                out = [f"hi {i}" for i in batches[-1]]
                await engine.complete_step(run.id, "pipeline", output=out)
                with pytest.raises(StepNotWaiting, match="is pending, not waiting"):
                    await engine.complete_step(run.id, "pipeline", output=out)  # not twice
                run = await engine.resume(run.id)
    finally:
        await store.close()
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.steps["pipeline"].output == [f"<hi {i}>" for i in range(10)]


async def test_a_run_interrupted_while_a_batch_waits_hands_the_same_batch_again() -> None:
    store = InMemoryRunStore()
    stages = Stages()
    engine = engine_on(store, stages)
    pipeline = spec(6, [{"id": "count", "argv": ["count"], "concurrency": 3}, ASK])
    with anyio.fail_after(20):
        run = await engine.run(pipeline)
        first = run.steps["pipeline"].request
        await store.set_run(run.id, status=RunStatus.INTERRUPTED)
        again = await engine.resume(run.id)
    assert handed(again) == [0, 1, 2, 3]
    assert again.steps["pipeline"].request == first
    assert stages.count("count") == 6  # the items before the client stage ran once
    with pytest.raises(StepOutputRejected, match=r"exactly 4 outputs in that order"):
        await engine.complete_step(run.id, "pipeline", output="not a list")
    await engine.complete_step(run.id, "pipeline", output='["a", "b", "c", "d"]')  # JSON text
    with anyio.fail_after(20):
        run = await engine.resume(run.id)
    assert handed(run) == [4, 5]
    assert stages.count("count") == 6


async def test_a_failed_item_comes_back_in_a_later_batch_then_becomes_a_dead_letter() -> None:
    engine = engine_on(InMemoryRunStore())
    retried = {**ASK, "batch": 2, "retries": 1}
    tries: list[tuple[int, int]] = []
    with anyio.fail_after(20):
        run = await engine.run(spec(3, [retried]))
        while run.status is RunStatus.WAITING:
            items = run.steps["pipeline"].request["inputs"]["items"]
            tries += [(it["item_index"], it["attempt"]) for it in items]
            out = [{"error": "cannot"} if it["item_index"] == 1 else "ok" for it in items]
            await engine.complete_step(run.id, "pipeline", output=out)
            run = await engine.resume(run.id)
    assert tries == [(0, 1), (1, 1), (1, 2), (2, 1)]
    assert run.status is RunStatus.FAILED
    assert "item 1 at stage 'ask' after 2 attempt(s): the client reported: cannot" in (
        run.steps["pipeline"].error or ""
    )


async def test_dead_letters_stay_dead_through_the_batches_and_a_resume_re_drives_them() -> None:
    stages = Stages()
    stages.fail = {("count", 1): 99}
    engine = engine_on(InMemoryRunStore(), stages)
    pipeline = spec(6, [{"id": "count", "argv": ["count"]}, {**ASK, "batch": 2}])
    with anyio.fail_after(20):
        run = await engine.run(pipeline)
        while run.status is RunStatus.WAITING:
            await engine.complete_step(run.id, "pipeline", output=["ok"] * len(handed(run)))
            run = await engine.resume(run.id)
        assert stages.calls[("count", 1)] == 1  # not again at each batch
        assert run.status is RunStatus.FAILED
        stages.fail = {}  # fixed: the resume runs it again, and hands it to the client
        run = await engine.resume(run.id)
    assert handed(run) == [1]
    assert stages.calls[("count", 1)] == 2


def test_a_client_batch_is_capped_and_an_api_stage_takes_no_batch() -> None:
    bad = spec(1, [{**ASK, "batch": 51}, {"id": "api", "prompt": "x", "run": "prompt", "batch": 2}])
    with pytest.raises(SpecError) as exc:
        compile_workflow(parse_spec(bad))
    assert [(p.path, p.message.split(";")[0]) for p in exc.value.problems] == [
        (
            "steps[0] (pipeline).pipeline.stages[0] (ask).batch",
            "a client task lists at most 50 items (each with its prompt)",
        ),
        (
            "steps[0] (pipeline).pipeline.stages[1] (api).batch",
            "`batch` hands several items to one client task",
        ),
    ]


# -- the memory sink -----------------------------------------------------------------------


async def test_a_memory_sink_has_one_line_per_item_once_even_across_a_resume() -> None:
    store = await SqliteRunStore.open(":memory:")
    files = AsyncMemoryFiles.of(store)
    stages = Stages()
    stages.fail = {("work", 2): 99}
    engine = engine_on(store, stages)
    engine.config.memory = files
    path = "/memories/out/${inputs.name}.jsonl"
    pipeline = {
        **spec(5, [{"id": "work", "argv": ["work"]}]),
        "inputs": {"name": "results"},
        "sink": {"memory": path, "scope": "workflow"},
    }
    scope = "workflow:p"
    read = MemoryFiles.read
    try:
        with anyio.fail_after(20):
            run = await engine.run(pipeline)
            assert run.status is RunStatus.FAILED  # item 2 is a dead letter
            first = await files.run(read, "/memories/out/results.jsonl", scope=scope)
            # as if the process died after writing a line and before committing it
            await files.run(
                MemoryFiles.put, "/memories/out/results.jsonl", first + "{}\n", scope=scope
            )
            stages.fail = {}
            run = await engine.resume(run.id)
            text = await files.run(read, "/memories/out/results.jsonl", scope=scope)
            history = await files.run(
                MemoryFiles.history, "/memories/out/results.jsonl", scope=scope
            )
    finally:
        await store.close()
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.steps["pipeline"].output == {
        "sink": "memory",
        "path": "/memories/out/results.jsonl",
        "scope": scope,
        "items": 5,
        "dead": 0,
    }
    lines = [json.loads(x) for x in text.splitlines()]
    assert [x["item_index"] for x in lines] == [0, 1, 3, 4, 2]
    assert lines[0] == {"item_index": 0, "item": 0, "output": "work(0)"}
    assert f"run:{run.id}/step:pipeline" in {r.author for r in history}


async def test_a_memory_sink_without_a_memory_store_is_refused_before_the_run() -> None:
    engine = engine_on(InMemoryRunStore())
    pipeline = {**spec(1, [{"id": "s", "op": "pass"}]), "sink": {"memory": "/memories/x"}}
    with pytest.raises(ConfigurationError, match="sink `memory` writes to the memory store"):
        await engine.create(pipeline)


async def test_the_client_example_runs_without_an_api_key_or_a_shell() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    store = await SqliteRunStore.open(":memory:")
    engine = engine_on(store)
    engine.config.workspace = examples
    engine.config.memory = files = AsyncMemoryFiles.of(store)
    tasks = 0
    try:
        with anyio.fail_after(30):
            run = await engine.run(load_spec_file(examples / "pipeline-client.yaml"))
            while run.status is RunStatus.WAITING:
                tasks += 1
                request = run.steps["pipeline"].request
                out = [f"about {i['item_index']}" for i in request["inputs"]["items"]]
                assert "Read the workflow spec " in request["instructions"]
                await engine.complete_step(run.id, "pipeline", output=out)
                run = await engine.resume(run.id)
            scope = f"project:{examples}"
            path = "/memories/pipeline-client/specs.jsonl"
            text = await files.run(MemoryFiles.read, path, scope=scope)
    finally:
        await store.close()
    assert run.status is RunStatus.SUCCEEDED, run.error
    names = sorted(p.name for p in examples.glob("*.yaml"))
    assert tasks == -(-len(names) // 10)
    rows = [json.loads(line)["output"] for line in text.splitlines()]
    assert rows == [{"file": n, "about": f"about {i}"} for i, n in enumerate(names)]
