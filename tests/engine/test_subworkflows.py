"""`workflow` steps: a whole workflow run as a child run of the step (`PARENT.STEP`,
`parent_run_id`), resumed with its parent, its outputs the step's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.engine.test_foreach import Recording, engine_on, statuses
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import SpecError, StepRunsAChild
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.plan import make_plan
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio

CHILD: dict[str, Any] = {
    "name": "shout",
    "inputs": {"name": {"required": True}},
    "steps": [
        {"id": "up", "args": "${inputs.name | upper}"},
        {"id": "twice", "args": "${up.output}${up.output}"},
    ],
}


def parent(child: Any = CHILD, **step: Any) -> dict[str, Any]:
    return {
        "name": "parent",
        "steps": [
            {"id": "who", "args": "ada"},
            {"id": "call", "workflow": child, "inputs": {"name": "${who.output}"}, **step},
            {"id": "end", "args": "${call.output.twice}!"},
        ],
    }


async def test_a_workflow_step_runs_its_child_as_a_linked_run_and_outputs_its_outputs() -> None:
    store = InMemoryRunStore()
    with anyio.fail_after(5):
        run = await engine_on(store).run(parent())
    assert run.status.value == "succeeded", run.error
    assert run.steps["call"].output == {"up": "ADA", "twice": "ADAADA"}
    assert run.steps["end"].output == "ADAADA!"
    child = await store.load_run(f"{run.id}.call")
    assert (child.parent_run_id, child.status.value, child.inputs) == (
        run.id,
        "succeeded",
        {"name": "ada"},
    )


async def test_a_child_from_a_spec_file_in_the_workspace_and_none_outside(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "shout.yaml").write_text(
        "inputs: {name: {required: true}}\nsteps:\n  - {id: twice, args: '${inputs.name}${inputs.name}'}\n"
    )
    engine = engine_on(InMemoryRunStore(), workspace=tmp_path)
    with anyio.fail_after(5):
        run = await engine.run(parent("flows/shout.yaml"))
    assert run.steps["call"].output == {"twice": "adaada"}

    (tmp_path / "flows" / "link.yaml").symlink_to(tmp_path.parent / "elsewhere.yaml")
    with anyio.fail_after(5):
        run = await engine.run(parent("flows/link.yaml"))
    assert run.status.value == "failed"
    assert "leads outside the workspace" in (run.steps["call"].error or "")
    with pytest.raises(SpecError, match="relative to the workspace"):
        compile_workflow(parse_spec(parent("../x.yaml")))


async def test_a_failed_child_fails_the_step_and_resume_resumes_the_same_child(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    async with await SqliteRunStore.open(db) as store:
        with anyio.fail_after(10):
            run = await engine_on(store, Recording(broken={"twice"})).run(parent())
    assert run.status.value == "failed"
    assert run.steps["call"].error == (f"child run {run.id}.call failed: step 'twice' failed")
    again = Recording()
    async with await SqliteRunStore.open(db) as store:
        with anyio.fail_after(10):
            resumed = await engine_on(store, again).resume(run.id)
        runs = await store.list_runs()
    assert resumed.status.value == "succeeded", resumed.error
    assert again.calls == ["twice", "end"]  # the child's `up` had committed
    assert sorted(r.id for r in runs) == sorted([run.id, f"{run.id}.call"])


async def test_a_child_waiting_for_the_client_leaves_the_step_waiting_until_resumed() -> None:
    store = InMemoryRunStore()
    engine = Engine(
        store,
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(),
    )
    child = {"steps": [{"id": "ask", "run": "client", "prompt": "Name a colour"}]}
    spec = {
        "steps": [{"id": "call", "workflow": child}, {"id": "end", "args": "${call.output.ask}"}]
    }
    with anyio.fail_after(5):
        run = await engine.run(spec)
        assert (run.status.value, statuses(run)["call"]) == ("waiting", "waiting")
        assert run.steps["call"].request["child_run"] == f"{run.id}.call"
        with pytest.raises(StepRunsAChild, match="complete that run's waiting steps"):
            await engine.complete_step(run.id, "call", output="x")
        await engine.complete_step(f"{run.id}.call", "ask", output="teal")
        final = await engine.resume(run.id)
    assert (final.status.value, final.steps["end"].output) == ("succeeded", "teal")


async def test_each_item_of_a_foreach_can_run_its_own_child_workflow() -> None:
    spec = {
        "steps": [
            {"id": "names", "value": ["a", "b"]},
            {
                "id": "each",
                "foreach": "${names.output}",
                "workflow": CHILD,
                "inputs": {"name": "${item}"},
            },
        ]
    }
    store = InMemoryRunStore()
    with anyio.fail_after(5):
        run = await engine_on(store).run(spec)
    assert run.steps["each"].output == [{"up": "A", "twice": "AA"}, {"up": "B", "twice": "BB"}]
    children = {r.id for r in await store.list_runs() if r.parent_run_id == run.id}
    assert children == {f"{run.id}.each[0]", f"{run.id}.each[1]"}


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"inputs": {"nom": "x"}}, "inputs.nom: the child workflow declares no input 'nom'"),
        ({"inputs": {}}, "the child workflow needs name: give them"),
        ({"args": "x"}, "cannot have args of its own"),
    ],
)
def test_validation_checks_the_child_and_what_the_step_gives_it(
    step: dict[str, Any], message: str
) -> None:
    spec = parent()
    spec["steps"][1] = {"id": "call", "workflow": CHILD, **step}
    with pytest.raises(SpecError) as err:
        compile_workflow(parse_spec(spec))
    assert message in str(err.value)


def test_an_inline_childs_problems_are_named_by_their_path() -> None:
    child = {"steps": [{"id": "a", "args": "${nope.output}"}]}
    with pytest.raises(SpecError) as err:
        compile_workflow(parse_spec({"steps": [{"id": "call", "workflow": child}]}))
    assert "steps[0] (call).workflow.steps[0] (a).args: unknown step or name 'nope'" in str(
        err.value
    )


def test_the_plan_shows_the_child_and_estimates_its_critical_path() -> None:
    plan = make_plan(compile_workflow(parse_spec(parent())))
    assert plan.steps["call"].shape == "child workflow shout (2 steps)"
    assert plan.steps["call"].estimate_s == pytest.approx(0.02)


async def test_a_spec_file_that_runs_itself_stops_at_the_depth_limit(tmp_path: Path) -> None:
    (tmp_path / "self.yaml").write_text("steps:\n  - {id: again, workflow: self.yaml}\n")
    store = InMemoryRunStore()
    with anyio.fail_after(10):
        run = await engine_on(store, workspace=tmp_path).run(
            {"steps": [{"id": "again", "workflow": "self.yaml"}]}
        )
    assert run.status.value == "failed"
    runs = await store.list_runs(limit=100)
    assert len(runs) == 9  # the run and 8 nested children
    deepest = max(runs, key=lambda r: r.id.count("."))
    assert "nest 8 deep here" in (deepest.steps["again"].error or "")
