"""`foreach`: a step runs once per item; each instance is a durable step added to the run
at run time, with a stable id, and the step's output is its instances' outputs in item
order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import SpecError, StepError
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.plan import make_plan
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio


class Recording:
    """Builtin steps, recording each call; steps named in `broken` raise a non-retryable
    error, and steps named in `gates` wait for their event first."""

    def __init__(self, broken: set[str] | None = None) -> None:
        self.broken = set(broken or ())
        self.calls: list[str] = []
        self.running = 0
        self.most = 0
        self.release: anyio.Event | None = None
        self._builtin = BuiltinExecutor()

    async def execute(self, call: StepCall) -> StepOutcome:
        self.calls.append(call.step.id)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.release is not None:
                await self.release.wait()
            if call.step.id in self.broken:
                raise StepError(f"{call.step.id} broke", retryable=False)
            return await self._builtin.execute(call)
        finally:
            self.running -= 1


def engine_on(store: Any, executor: Any = None, **config: Any) -> Engine:
    executors = {ExecutorKind.BUILTIN: executor or BuiltinExecutor()}
    return Engine(store, executors, EngineConfig(rand=lambda: 0.5, **config))


def outputs(run: RunRecord) -> dict[str, Any]:
    return {sid: rec.output for sid, rec in run.steps.items()}


def statuses(run: RunRecord) -> dict[str, str]:
    return {sid: rec.status.value for sid, rec in run.steps.items()}


REVIEW: dict[str, list[dict[str, Any]]] = {
    "steps": [
        {"id": "find", "value": ["a.py", "b.py", "c.py"]},
        {"id": "review", "foreach": "${find.output}", "args": "${item_index}: ${item}"},
        {"id": "report", "args": "${review.outputs | join('; ')}"},
    ]
}


async def test_each_item_runs_as_its_own_step_and_the_outputs_come_back_in_item_order() -> None:
    engine = engine_on(InMemoryRunStore())
    with anyio.fail_after(5):
        run = await engine.run(REVIEW)

    assert run.status.value == "succeeded"
    assert outputs(run) == {
        "find": ["a.py", "b.py", "c.py"],
        "review": ["0: a.py", "1: b.py", "2: c.py"],
        "report": "0: a.py; 1: b.py; 2: c.py",
        "review[0]": "0: a.py",
        "review[1]": "1: b.py",
        "review[2]": "2: c.py",
    }
    assert {sid: (rec.parent, rec.scope) for sid, rec in run.steps.items() if rec.parent} == {
        "review[0]": ("review", {"item": "a.py", "item_index": 0}),
        "review[1]": ("review", {"item": "b.py", "item_index": 1}),
        "review[2]": ("review", {"item": "c.py", "item_index": 2}),
    }


async def test_items_come_from_an_input_a_literal_list_or_json_text() -> None:
    engine = engine_on(InMemoryRunStore())
    spec = {
        "inputs": {"names": {"type": "json"}},
        "steps": [
            {"id": "greet", "foreach": "${inputs.names}", "args": "hi ${item}"},
            {"id": "count", "foreach": [1, 2], "value": "${item * 10}"},
            {"id": "text", "args": '["x", "y"]'},
            {"id": "parsed", "foreach": {"items": "${text.output}"}, "args": "<${item}>"},
        ],
    }
    with anyio.fail_after(5):
        run = await engine.run(spec, {"names": ["ann", "bo"]})
    assert run.status.value == "succeeded", run.error
    assert (run.steps["greet"].output, run.steps["count"].output, run.steps["parsed"].output) == (
        ["hi ann", "hi bo"],
        [10, 20],
        ["<x>", "<y>"],
    )


async def test_an_empty_list_gives_an_empty_output_and_the_run_goes_on() -> None:
    engine = engine_on(InMemoryRunStore())
    spec = {
        "steps": [
            {"id": "review", "foreach": [], "args": "${item}"},
            {"id": "after", "args": "${review.outputs | length} reviews"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert (run.status.value, outputs(run)) == ("succeeded", {"review": [], "after": "0 reviews"})


async def test_glob_and_lines_read_the_workspace_and_nothing_outside_it(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    for name in ("src/b.py", "src/a.py", "src/pkg/c.py", "src/notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "list.txt").write_text("one\n\n  two  \nthree\n")
    (tmp_path.parent / "outside.py").write_text("secret")
    engine = engine_on(InMemoryRunStore(), workspace=tmp_path)
    spec = {
        "steps": [
            {"id": "files", "foreach": {"glob": "src/**/*.py"}, "args": "${item}"},
            {"id": "lines", "foreach": {"lines": "list.txt"}, "args": "${item}"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert run.steps["files"].output == ["src/a.py", "src/b.py", "src/pkg/c.py"]
    assert run.steps["lines"].output == ["one", "two", "three"]

    escape = {"steps": [{"id": "files", "foreach": {"glob": "../*.py"}, "args": "${item}"}]}
    with anyio.fail_after(5):
        run = await engine.run(escape)
    assert run.status.value == "failed"
    assert "must be a relative path inside the workspace" in (run.steps["files"].error or "")


async def test_a_key_names_the_instances_and_duplicate_keys_fail_the_step_clearly() -> None:
    engine = engine_on(InMemoryRunStore())
    spec: dict[str, list[dict[str, Any]]] = {
        "steps": [
            {"id": "files", "value": [{"path": "a.py"}, {"path": "b.py"}]},
            {
                "id": "review",
                "foreach": {"items": "${files.output}", "key": "${item.path}"},
                "args": "${item.path}",
            },
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert [sid for sid in run.steps if run.steps[sid].parent] == ["review[a.py]", "review[b.py]"]

    spec["steps"][0]["value"] = [{"path": "a.py"}, {"path": "a.py"}]
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert run.status.value == "failed"
    assert "keys must be unique" in (run.steps["review"].error or "")


async def test_a_failed_instance_fails_the_run_under_the_default_policy() -> None:
    engine = engine_on(InMemoryRunStore(), Recording(broken={"review[1]"}))
    with anyio.fail_after(5):
        run = await engine.run(REVIEW)
    assert run.status.value == "failed"
    assert run.steps["review[1]"].status.value == "failed"
    assert run.steps["report"].status.value == "pending"


async def test_with_continue_a_failed_instance_is_collected_and_the_run_goes_on() -> None:
    engine = engine_on(InMemoryRunStore(), Recording(broken={"review[1]"}))
    spec: dict[str, Any] = {"steps": [dict(s) for s in REVIEW["steps"]]}
    spec["steps"][1]["on_failure"] = "continue"
    spec["steps"][2]["args"] = "${review.outputs}"
    with anyio.fail_after(5):
        run = await engine.run(spec)
    review = run.steps["review"]
    assert (review.status.value, review.output) == ("degraded", ["0: a.py", None, "2: c.py"])
    assert review.error == "1 of 3 instances have no output: review[1]: review[1] broke"
    assert run.steps["report"].status.value == "succeeded"


async def test_max_concurrency_caps_the_instances_running_at_once() -> None:
    rec = Recording()
    engine = engine_on(InMemoryRunStore(), rec)
    spec = {
        "steps": [
            {
                "id": "w",
                "foreach": {"items": list(range(8)), "max_concurrency": 3},
                "args": "${item}",
            }
        ]
    }
    rec.release = anyio.Event()

    async def release_once_capped() -> None:
        while rec.running < 3:
            await anyio.sleep(0)
        for _ in range(20):  # give the dispatcher turns to overshoot, if it would
            await anyio.sleep(0)
        assert rec.release is not None
        rec.release.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(release_once_capped)
            run = await engine.run(spec)
    assert run.status.value == "succeeded"
    assert rec.most == 3
    assert run.steps["w"].output == [str(i) for i in range(8)]


async def test_more_items_than_the_servers_limit_fail_the_step_and_say_which_setting() -> None:
    engine = engine_on(InMemoryRunStore(), max_foreach_items=5)
    spec = {"steps": [{"id": "w", "foreach": list(range(6)), "args": "${item}"}]}
    with anyio.fail_after(5):
        run = await engine.run(spec)
    assert run.status.value == "failed"
    assert "TUTTI_MAX_FOREACH_ITEMS" in (run.steps["w"].error or "")
    assert not [s for s in run.steps.values() if s.parent]


async def test_resume_runs_only_the_instances_that_had_not_committed(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "b.txt").write_text("")
    db = tmp_path / "runs.db"
    spec = {
        "steps": [
            {"id": "each", "foreach": {"glob": "*.txt"}, "args": "${item}"},
            {"id": "after", "args": "${each.outputs | join(',')}"},
        ]
    }
    first = Recording(broken={"each[1]"})
    async with await SqliteRunStore.open(db) as store:
        with anyio.fail_after(10):
            run = await engine_on(store, first, workspace=tmp_path).run(spec)
    assert run.status.value == "failed"
    # a file that appears after the items were read changes nothing on resume
    (tmp_path / "c.txt").write_text("")
    again = Recording()
    async with await SqliteRunStore.open(db) as store:
        with anyio.fail_after(10):
            resumed = await engine_on(store, again, workspace=tmp_path).resume(run.id)
        reloaded = await store.load_run(run.id)
    assert resumed.status.value == "succeeded"
    assert again.calls == ["each[1]", "after"]
    assert reloaded.steps["each"].output == ["a.txt", "b.txt"]
    assert reloaded.steps["after"].output == "a.txt,b.txt"
    assert list(reloaded.steps) == ["each", "after", "each[0]", "each[1]"]


async def test_an_instance_handed_to_the_client_is_completed_by_its_id() -> None:
    store = InMemoryRunStore()
    engine = Engine(
        store,
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.CLIENT: _client()},
        EngineConfig(),
    )
    spec = {
        "steps": [
            {"id": "ask", "foreach": ["x", "y"], "run": "client", "prompt": "Say ${item}"},
            {"id": "done", "args": "${ask.outputs | join('+')}"},
        ]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)
        assert run.status.value == "waiting"
        assert run.steps["ask[0]"].request["instructions"].endswith("Say x")
        await engine.complete_step(run.id, "ask[0]", output="X")
        await engine.complete_step(run.id, "ask[1]", output="Y")
        final = await engine.resume(run.id)
    assert (final.status.value, final.error, final.steps["done"].output) == (
        "succeeded",
        None,
        "X+Y",
    )


def _client() -> Any:
    from tutti_mcp.engine.executors.client import ClientExecutor

    return ClientExecutor()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"id": "s", "args": "${item}"}, "exist only in a `foreach` step"),
        (
            {"id": "s", "foreach": "${item}", "args": "x"},
            "the source of the items cannot read ${item}",
        ),
        (
            {"id": "s", "foreach": [1], "when": "${item > 0}", "args": "x"},
            "cannot read ${item}; filter the items",
        ),
        ({"id": "s", "foreach": {"items": [1], "glob": "*"}, "args": "x"}, "exactly one source"),
        (
            {"id": "s", "foreach": [1], "args": "x", "on_failure": "fallback", "fallback": "t"},
            "cannot have a fallback step",
        ),
    ],
)
def test_validation_says_where_item_names_and_foreach_fields_do_not_fit(
    step: dict[str, Any], message: str
) -> None:
    spec = {"steps": [step, {"id": "t", "args": "x"}]}
    with pytest.raises(SpecError) as err:
        compile_workflow(parse_spec(spec))
    assert message in str(err.value)


def test_outputs_is_read_only_from_a_foreach_step() -> None:
    spec = {"steps": [{"id": "a", "args": "x"}, {"id": "b", "args": "${a.outputs}"}]}
    with pytest.raises(SpecError) as err:
        compile_workflow(parse_spec(spec))
    assert "has no `foreach`: use ${a.output}" in str(err.value)


def test_the_plan_draws_a_foreach_step_as_one_node_with_its_count_when_known() -> None:
    plan = make_plan(compile_workflow(parse_spec(REVIEW)))
    spec = {"steps": [{"id": "w", "foreach": [1, 2, 3], "args": "${item}"}]}
    literal = make_plan(compile_workflow(parse_spec(spec)))
    assert "review<br/>builtin<br/>for each item" in plan.mermaid
    assert "w<br/>builtin<br/>× 3" in literal.mermaid
    assert "review[0]" not in plan.mermaid


async def test_the_workflow_history_keeps_the_step_not_its_instances() -> None:
    store = InMemoryRunStore()
    with anyio.fail_after(5):
        await engine_on(store).run(REVIEW)
    history = await store.workflow_history("workflow")
    assert set(history.steps) == {"find", "review", "report"}
