"""Pipeline mode: items stream through stages with bounded buffers; each source, ordered
and unordered output, the bound on items in flight (counted by the stages themselves),
retries then dead letters, and a resume that re-drives the dead letters without running
committed items again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError, SpecError, StepError
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.shell import ShellExecutor
from tutti_mcp.engine.modes.pipeline import stages as stages_module
from tutti_mcp.engine.modes.pipeline.report import pipeline_figures
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, load_spec_file, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.pipeline_rows import ItemState
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio


class Stages:
    """Stages that run on "shell" (`argv: [NAME]`), done here: each call is counted per
    (stage, item); `fail` says how many first attempts of an item fail (retryably)."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, int], int] = {}
        self.fail: dict[tuple[str, int], int] = {}
        self.hooks: dict[str, Any] = {}

    def count(self, stage: str) -> int:
        return sum(n for (s, _), n in self.calls.items() if s == stage)

    async def execute(self, call: StepCall) -> StepOutcome:
        stage, index = call.step.id, call.context["item_index"]
        key = (stage, index)
        self.calls[key] = self.calls.get(key, 0) + 1
        hook = self.hooks.get(stage)
        if hook is not None:
            await hook(index)
        if self.fail.get(key, 0) >= self.calls[key]:
            raise StepError(f"{stage} broke on item {index}")
        return StepOutcome(f"{stage}({call.context['item']})")


def engine_on(store: Any, stages: Stages | None = None, **config: Any) -> Engine:
    executors: dict[ExecutorKind, Any] = {ExecutorKind.BUILTIN: BuiltinExecutor()}
    executors[ExecutorKind.SHELL] = stages or ShellExecutor()
    return Engine(store, executors, EngineConfig(rand=lambda: 0.5, **config))


def pipeline(source: Any, stages: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"name": "p", "type": "pipeline", "source": source, "stages": stages, **more}


# -- the spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "where", "says"),
    [
        (
            pipeline({"items": [1], "glob": "*.py"}, [{"id": "a", "args": "x"}]),
            "source",
            "exactly one of items, lines, jsonl, glob, command",
        ),
        (
            pipeline([1], [{"id": "a", "args": "x", "colour": 3}]),
            "stages[0] (a).colour",
            "unknown field",
        ),
        (pipeline([1], [{"id": "item", "args": "x"}]), "stages[0] (item).id", "reserved"),
        (
            pipeline([1], [{"id": "a", "args": "x"}, {"id": "a", "args": "y"}]),
            "stages",
            "duplicate stage id 'a'",
        ),
        (pipeline([1], [{"id": "a", "args": "x"}], buffer=0), "buffer", "greater than or equal"),
        (
            pipeline([1], [{"id": "a", "args": "x", "run": "gate"}]),
            "stages[0] (a).run",
            "cannot be an approval gate",
        ),
    ],
)
def test_a_bad_pipeline_field_is_refused_at_the_field_as_written(
    spec: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec(spec)
    assert [(p.path, says in p.message) for p in exc.value.problems] == [(where, True)]


@pytest.mark.parametrize(
    ("stages", "where", "says"),
    [
        (
            [{"id": "a", "args": "${b.output}"}, {"id": "b", "args": "x"}],
            "steps[1] (p).pipeline.stages[0].args",
            "stage 'b', which comes after it",
        ),
        ([{"id": "a", "args": "${a.output}"}], "steps[1] (p).pipeline.stages[0].args", "itself"),
        (
            [{"id": "a", "args": "${nope.output}"}],
            "steps[1] (p).pipeline.stages[0].args",
            "unknown step or name 'nope'",
        ),
        (
            [{"id": "a", "args": "${inputs.missing}"}],
            "steps[1] (p).pipeline.stages[0].args",
            "unknown input 'missing'",
        ),
        (
            [{"id": "a", "prompt": "x", "batch": 5, "run": "prompt"}],
            "steps[1] (p).pipeline.stages[0] (a).batch",
            "one item per call",
        ),
        ([{"id": "pre", "args": "x"}], "steps[1] (p).pipeline.stages[0] (pre).id", "also a step"),
        ([{"id": "a", "run": "shell"}], "steps[1] (p).pipeline.stages[0] (a)", "needs `argv`"),
    ],
)
def test_a_bad_reference_or_stage_is_named_by_its_exact_path(
    stages: list[dict[str, Any]], where: str, says: str
) -> None:
    spec = parse_spec(
        {
            "steps": [
                {"id": "pre", "value": [1, 2]},
                {"id": "p", "pipeline": {"source": "${pre.output}", "stages": stages}},
            ]
        }
    )
    with pytest.raises(SpecError) as exc:
        compile_workflow(spec)
    assert [(p.path, says in p.message) for p in exc.value.problems] == [(where, True)]


def test_the_source_cannot_read_its_own_items_and_earlier_steps_become_dependencies() -> None:
    bad = parse_spec(pipeline({"items": "${item}"}, [{"id": "a", "args": "x"}]))
    with pytest.raises(SpecError, match=r"pipeline\.source\.items: the source of the items"):
        compile_workflow(bad)
    wf = compile_workflow(
        parse_spec(
            {
                "steps": [
                    {"id": "pre", "value": [1, 2]},
                    {"id": "cfg", "value": "!"},
                    {
                        "id": "p",
                        "pipeline": {
                            "source": "${pre.output}",
                            "stages": [{"id": "a", "args": "${item}${cfg.output}"}],
                        },
                    },
                ]
            }
        )
    )
    assert wf.deps["p"] == ("pre", "cfg")


# -- running -------------------------------------------------------------------------------


async def test_items_go_through_the_stages_in_order_and_a_stage_reads_earlier_ones() -> None:
    spec = pipeline(
        {"items": ["a", "b", "c"]},
        [
            {"id": "up", "args": "${item | upper}"},
            {"id": "both", "value": {"i": "${item_index}", "up": "${up.output}"}, "op": "json"},
            {"id": "odd", "op": "pass", "value": "odd ${item}", "when": "${item_index % 2 == 1}"},
        ],
    )
    with anyio.fail_after(10):
        run = await engine_on(InMemoryRunStore()).run(spec)
    assert run.status.value == "succeeded", run.error
    assert run.steps["pipeline"].output == [
        {"i": 0, "up": "A"},  # odd skipped: the item passes through unchanged
        "odd b",
        {"i": 2, "up": "C"},
    ]


async def test_each_source_gives_its_items(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("ann\n\n  bo \ncy", encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text('{"n": 1}\n{"n": 2}\n', encoding="utf-8")
    (tmp_path / "src").mkdir()
    for name in ("b.py", "a.py", "c.txt"):
        (tmp_path / "src" / name).write_text("x", encoding="utf-8")
    engine = engine_on(InMemoryRunStore(), workspace=tmp_path)
    stage = [{"id": "s", "op": "pass"}]
    sources = {
        "items": {"items": "${inputs.xs}"},
        "lines": {"lines": "names.txt"},
        "jsonl": {"jsonl": "rows.jsonl"},
        "glob": {"glob": "src/*.py"},
        "command": {"command": ["printf", "one\\ntwo\\n"]},
    }
    got = {}
    with anyio.fail_after(20):
        for name, source in sources.items():
            spec = pipeline(source, stage, inputs={"xs": {"type": "json", "default": [3, 4]}})
            run = await engine.run(spec)
            assert run.status.value == "succeeded", (name, run.error)
            got[name] = run.steps["pipeline"].output
    assert got == {
        "items": [3, 4],
        "lines": ["ann", "bo", "cy"],
        "jsonl": [{"n": 1}, {"n": 2}],
        "glob": ["src/a.py", "src/b.py"],
        "command": ["one", "two"],
    }


async def test_a_file_source_outside_the_workspace_is_refused(tmp_path: Path) -> None:
    engine = engine_on(InMemoryRunStore(), workspace=tmp_path)
    with anyio.fail_after(10):
        run = await engine.run(pipeline({"lines": "../etc/passwd"}, [{"id": "s", "op": "pass"}]))
    assert run.status.value == "failed"
    assert "must be a relative path inside the workspace" in (run.steps["pipeline"].error or "")


def held_back_first_item(stages: Stages) -> None:
    """Item 0 of stage `slow` finishes only after item 3 has."""
    three_done = anyio.Event()

    async def hold(index: int) -> None:
        if index == 0:
            await three_done.wait()
        if index == 3:
            three_done.set()

    stages.hooks["slow"] = hold


@pytest.mark.parametrize("ordered", [True, False])
async def test_ordered_output_keeps_source_order_and_unordered_output_does_not_wait(
    ordered: bool, tmp_path: Path
) -> None:
    stages = Stages()
    held_back_first_item(stages)
    spec = pipeline(
        list(range(4)),
        [{"id": "slow", "argv": ["slow"], "concurrency": 4}],
        ordered=ordered,
        sink={"jsonl": "out.jsonl"},
    )
    with anyio.fail_after(10):
        run = await engine_on(InMemoryRunStore(), stages, workspace=tmp_path).run(spec)
    assert run.status.value == "succeeded", run.error
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    order = [line["item_index"] for line in lines]
    assert order == [0, 1, 2, 3] if ordered else order[-1] == 0
    assert run.steps["pipeline"].output == {
        "sink": "jsonl",
        "path": "out.jsonl",
        "items": 4,
        "dead": 0,
    }


async def test_items_in_flight_stay_within_the_buffers_plus_the_stages_hands() -> None:
    """A stage ten times slower than the others: the stages before it are throttled. Items
    in flight are counted by the stages themselves: past the first, not yet past the last."""
    stages = Stages()
    seen: list[int] = []

    async def slow(index: int) -> None:
        for _ in range(10):  # ten turns of the event loop for each item: 10x the others
            await anyio.lowlevel.checkpoint()

    async def measure(index: int) -> None:
        seen.append(stages.count("first") - stages.count("last"))

    stages.hooks.update({"slow": slow, "first": measure, "last": measure})
    n, buffer = 2_000, 10
    spec = pipeline(
        list(range(n)),
        [
            {"id": "first", "argv": ["first"]},
            {"id": "slow", "argv": ["slow"], "concurrency": 2},
            {"id": "last", "argv": ["last"]},
        ],
        buffer=buffer,
    )
    with anyio.fail_after(30):
        run = await engine_on(InMemoryRunStore(), stages).run(spec)
    assert run.status.value == "succeeded", run.error
    bound = (3 + 1) * buffer + (1 + 2 + 1)  # the buffers, and one item in each worker's hands
    assert max(seen) <= bound, max(seen)
    # the buffer before the slow stage filled (the stage after it keeps up): items waited
    assert max(seen) >= buffer + 2
    assert len(run.steps["pipeline"].output) == n


# -- failures and resume -------------------------------------------------------------------


async def test_an_item_that_keeps_failing_becomes_a_dead_letter_and_the_others_go_on() -> None:
    stages = Stages()
    stages.fail = {("work", 3): 99, ("work", 5): 1}  # 3 always fails, 5 only at first
    store = InMemoryRunStore()
    spec = pipeline(
        list(range(8)),
        [{"id": "work", "argv": ["work"], "retries": 2}, {"id": "tag", "args": "<${work.output}>"}],
        defaults={"retry": {"backoff_s": 0}},
    )
    with anyio.fail_after(10):
        run = await engine_on(store, stages).run(spec)
    assert run.status.value == "failed"
    error = run.steps["pipeline"].error or ""
    assert "1 item(s) failed a stage after their retries (dead letters)" in error
    assert "item 3 at stage 'work' after 3 attempt(s): work broke on item 3" in error
    assert stages.calls[("work", 3)] == 3 and stages.calls[("work", 5)] == 2
    snap = await store.load_pipeline(run.id, "pipeline")
    dead = {i: (r.stage, r.attempts) for i, r in snap.rows.items() if r.state is ItemState.DEAD}
    assert dead == {3: (0, 3)}
    assert snap.mark.sunk == 7


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_resume_re_drives_the_dead_letters_and_runs_no_committed_item_again(
    kind: str,
) -> None:
    stages = Stages()
    stages.fail = {("work", 2): 99}
    store: Any = InMemoryRunStore() if kind == "memory" else await SqliteRunStore.open(":memory:")
    try:
        spec = pipeline(
            list(range(6)),
            [{"id": "work", "argv": ["work"]}, {"id": "tag", "args": "<${work.output}>"}],
        )
        engine = engine_on(store, stages)
        with anyio.fail_after(10):
            run = await engine.run(spec)
            assert run.status.value == "failed"
            stages.fail = {}  # the cause is fixed
            resumed = await engine.resume(run.id)
        assert resumed.status.value == "succeeded", resumed.error
        assert resumed.steps["pipeline"].output == [f"<work({i})>" for i in range(6)]
        assert {i: stages.calls[("work", i)] for i in range(6)} == {
            0: 1,
            1: 1,
            2: 2,
            3: 1,
            4: 1,
            5: 1,
        }
    finally:
        if kind == "sqlite":
            await store.close()


async def test_a_file_sink_keeps_only_recent_rows_of_finished_items(tmp_path: Path) -> None:
    store = InMemoryRunStore()
    engine = engine_on(store, workspace=tmp_path, pipeline_keep=10)
    spec = pipeline(list(range(3_000)), [{"id": "s", "op": "pass"}], sink={"jsonl": "o.jsonl"})
    with anyio.fail_after(10):
        run = await engine.run(spec)
    assert run.status.value == "succeeded", run.error
    snap = await store.load_pipeline(run.id, "pipeline")
    assert (snap.mark.frontier, snap.mark.sunk) == (3_000, 3_000)
    assert len(snap.rows) <= 10 + 500  # the kept ones, and at most one batch more
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 3_000


async def test_status_figures_count_each_stage_and_the_result_lists_the_dead_letters() -> None:
    stages = Stages()
    stages.fail = {("work", 1): 99}
    store = InMemoryRunStore()
    spec = pipeline(
        ["a", "b", "c"],
        [{"id": "work", "argv": ["work"]}, {"id": "tag", "args": "<${work.output}>"}],
    )
    with anyio.fail_after(10):
        run = await engine_on(store, stages).run(spec)
    figures = await pipeline_figures(store, run, dead_letters=True)
    p = figures["pipeline"]
    assert (p["items"], p["dead"], p["in_flight"]) == (2, 1, 0)
    assert {sid: (s["done"], s["dead"], s["in_flight"]) for sid, s in p["stages"].items()} == {
        "work": (2, 1, 0),
        "tag": (2, 0, 0),
    }
    assert p["stages"]["work"]["latency"]["p50_ms"] is not None
    assert p["dead_letters"] == [
        {
            "item_index": 1,
            "stage": "work",
            "error": "work broke on item 1",
            "attempts": 1,
            "item": "b",
        }
    ]


async def test_a_stage_whose_executor_is_off_here_is_refused_before_the_run_starts() -> None:
    engine = Engine(InMemoryRunStore(), {ExecutorKind.BUILTIN: BuiltinExecutor()}, EngineConfig())
    spec = pipeline(
        [1],
        [{"id": "count", "argv": ["wc"]}, {"id": "ask", "prompt": "${item}", "run": "client"}],
    )
    with pytest.raises(ConfigurationError) as exc:
        await engine.create(spec)
    text = str(exc.value)
    assert "step 'pipeline', stage 'count' runs a shell command, and shell commands are off" in text
    assert "stage 'ask' needs the client executor, which is not available here" in text


async def test_the_files_example_runs_without_an_api_key() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    engine = engine_on(InMemoryRunStore(), workspace=examples)
    with anyio.fail_after(30):
        run = await engine.run(load_spec_file(examples / "pipeline-files.yaml"))
    assert run.status.value == "succeeded", run.error
    out = run.steps["files"].output
    files = sorted(p.name for p in examples.glob("*.yaml"))
    assert [x["file"] for x in out] == files
    for x in out:
        lines = len((examples / x["file"]).read_text().splitlines())
        assert (x["lines"], x.get("long", False)) == (lines, lines > 30)
    long = sum(1 for x in out if x.get("long"))
    assert run.steps["summary"].output == f"{len(files)} files, {long} long"


async def test_a_stage_told_429_backs_off_as_a_whole_and_the_items_are_not_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stages_module, "BACKOFF_S", (0.01, 1.0))
    stages = Stages()
    arrived: list[int] = []
    all_in = anyio.Event()

    async def crowd(index: int) -> None:
        arrived.append(index)
        if len(arrived) == 4:
            all_in.set()
        if len(arrived) <= 4:  # the first four calls are made at once, and all told 429
            await all_in.wait()
            raise StepError("Anthropic API error 429 from m: rate limited", retryable=True)

    stages.hooks["ask"] = crowd
    store = InMemoryRunStore()
    spec = pipeline(list(range(8)), [{"id": "ask", "argv": ["ask"], "concurrency": 4}])
    with anyio.fail_after(10):
        run = await engine_on(store, stages).run(spec)
    assert run.status.value == "succeeded", run.error
    assert run.steps["pipeline"].output == [f"ask({i})" for i in range(8)]
    figures = (await pipeline_figures(store, run))["pipeline"]["stages"]["ask"]
    assert (figures["backoffs"], figures["retries"], figures["dead"]) == (1, 0, 0)
    assert len(arrived) == 12  # the four told 429 once more each, after the pause


async def test_where_model_stages_run_is_stored_with_the_run_so_a_resume_runs_them_there() -> None:
    executors: dict[ExecutorKind, Any] = {
        ExecutorKind.BUILTIN: BuiltinExecutor(),
        ExecutorKind.SAMPLING: Stages(),
    }
    config = EngineConfig(model_executor=ExecutorKind.SAMPLING)
    engine = Engine(InMemoryRunStore(), executors, config)
    prepared = await engine.create(pipeline([1], [{"id": "ask", "prompt": "${item}?"}]))
    assert prepared.run.spec["defaults"] == {"model_executor": "sampling"}
