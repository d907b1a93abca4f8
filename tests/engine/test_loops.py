"""Bounded loops: `loop.steps` run as one iteration (`draft#1`, `critique#1`), again until
`loop.until` holds, at most `max_iterations` times; each iteration is durable, each
decision is recorded, and a resume continues in the iteration the loop was in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.engine.test_foreach import Recording, engine_on, statuses
from tutti_mcp.engine.errors import SpecError
from tutti_mcp.engine.spec import parse_spec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import EventKind
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

pytestmark = pytest.mark.anyio


def refine(until: str = "${critique.output.ok}", most: int = 5) -> dict[str, Any]:
    return {
        "inputs": {"topic": {"default": "tea"}},
        "steps": [
            {"id": "brief", "args": "on ${inputs.topic}"},
            {
                "id": "refine",
                "loop": {
                    "steps": [
                        {
                            "id": "draft",
                            "args": "v${loop.iteration} ${brief.output}"
                            "${' after ' ~ loop.last.draft if loop.last else ''}",
                        },
                        {
                            "id": "critique",
                            "value": {"ok": "${loop.iteration >= 3}", "of": "${draft.output}"},
                        },
                    ],
                    "until": until,
                    "max_iterations": most,
                },
            },
            {"id": "final", "args": "${refine.output.draft}"},
        ],
    }


async def test_a_loop_runs_its_steps_until_the_condition_holds_and_outputs_the_last_iteration() -> (
    None
):
    store = InMemoryRunStore()
    with anyio.fail_after(5):
        run = await engine_on(store).run(refine())

    assert run.status.value == "succeeded", run.error
    assert list(run.steps) == [
        "brief",
        "refine",
        "final",
        "draft#1",
        "critique#1",
        "draft#2",
        "critique#2",
        "draft#3",
        "critique#3",
    ]
    assert run.steps["draft#2"].output == "v2 on tea after v1 on tea"
    assert run.steps["refine"].output == {
        "draft": "v3 on tea after v2 on tea after v1 on tea",
        "critique": {"ok": True, "of": "v3 on tea after v2 on tea after v1 on tea"},
    }
    assert run.steps["final"].output == "v3 on tea after v2 on tea after v1 on tea"
    decisions = [
        (sid, data)
        for _, _, ev in await store.events(run.id)
        if ev.kind is EventKind.CONDITION
        for sid, data in [(ev.step_id, ev.data)]
    ]
    assert decisions == [
        ("refine#1", {"when": "${critique.output.ok}", "result": False}),
        ("refine#2", {"when": "${critique.output.ok}", "result": False}),
        ("refine#3", {"when": "${critique.output.ok}", "result": True}),
    ]


async def test_a_loop_that_never_satisfies_until_stops_at_max_iterations_and_says_so() -> None:
    with anyio.fail_after(5):
        run = await engine_on(InMemoryRunStore()).run(refine(until="${false}", most=2))
    loop = run.steps["refine"]
    assert (loop.status.value, loop.error) == (
        "degraded",
        "`until` did not hold in 2 iterations; the output is the last iteration's",
    )
    assert loop.output["draft"] == "v2 on tea after v1 on tea"
    assert "draft#3" not in run.steps
    assert run.steps["final"].status.value == "succeeded"


async def test_an_until_that_cannot_be_read_fails_the_loop_step_clearly() -> None:
    with anyio.fail_after(5):
        run = await engine_on(InMemoryRunStore()).run(refine(until="${critique.output.nope.x}"))
    assert run.status.value == "failed"
    assert (run.steps["refine"].error or "").startswith("loop.until of iteration 1:")


async def test_resume_continues_the_loop_in_the_iteration_it_was_in(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    first = Recording(broken={"critique#3"})
    async with await SqliteRunStore.open(db) as store:
        with anyio.fail_after(10):
            run = await engine_on(store, first).run(refine())
    assert run.status.value == "failed"
    assert first.calls[-2:] == ["draft#3", "critique#3"]

    again = Recording()
    async with await SqliteRunStore.open(db) as store:
        with anyio.fail_after(10):
            resumed = await engine_on(store, again).resume(run.id)
    assert resumed.status.value == "succeeded", resumed.error
    assert again.calls == ["critique#3", "final"]  # draft#3 had committed
    assert set(statuses(resumed).values()) == {"succeeded"}
    assert resumed.steps["final"].output == "v3 on tea after v2 on tea after v1 on tea"


@pytest.mark.parametrize(
    ("loop_step", "message"),
    [
        (
            {
                "id": "l",
                "args": "x",
                "loop": {
                    "steps": [{"id": "a", "args": "x"}],
                    "until": "${true}",
                    "max_iterations": 2,
                },
            },
            "cannot have args of its own",
        ),
        (
            {"id": "l", "loop": {"steps": [{"id": "a", "args": "x"}], "until": "${true}"}},
            "max_iterations",
        ),
        (
            {
                "id": "l",
                "loop": {
                    "steps": [{"id": "a", "args": "${loop.count}"}],
                    "until": "${true}",
                    "max_iterations": 2,
                },
            },
            "not ${loop.count}",
        ),
        (
            {
                "id": "l",
                "loop": {
                    "steps": [{"id": "t", "args": "x"}],
                    "until": "${true}",
                    "max_iterations": 2,
                },
            },
            "step id 't' is also a step outside",
        ),
        (
            {
                "id": "l",
                "loop": {
                    "steps": [{"id": "a", "foreach": [1], "args": "${item}"}],
                    "until": "${true}",
                    "max_iterations": 2,
                },
            },
            "not supported inside a loop yet",
        ),
        (
            {
                "id": "l",
                "loop": {
                    "steps": [{"id": "a", "args": "${nope.output}"}],
                    "until": "${true}",
                    "max_iterations": 2,
                },
            },
            "steps[0] (l).loop.steps[0] (a).args: unknown step or name 'nope'",
        ),
    ],
)
def test_loop_validation_names_the_field_inside_the_loop(
    loop_step: dict[str, Any], message: str
) -> None:
    spec = {"steps": [loop_step, {"id": "t", "args": "x"}]}
    with pytest.raises(SpecError) as err:
        compile_workflow(parse_spec(spec))
    assert message in str(err.value)


def test_a_loop_step_depends_on_the_outside_steps_its_steps_read() -> None:
    wf = compile_workflow(parse_spec(refine()))
    assert wf.deps["refine"] == ("brief",)
    assert ("brief", "refine") in wf.implicit
    assert wf.bodies["refine"].deps == {"draft": (), "critique": ("draft",)}


async def test_an_if_block_inside_a_loop_decides_in_each_iteration_on_that_iteration() -> None:
    spec = {
        "steps": [
            {
                "id": "refine",
                "loop": {
                    "steps": [
                        {"id": "n", "value": "${loop.iteration}"},
                        {
                            "id": "parity",
                            "if": "${n.output % 2 == 0}",
                            "then": [{"id": "even", "args": "even ${n.output}"}],
                            "else": [{"id": "odd", "args": "odd ${n.output}"}],
                        },
                    ],
                    "until": "${loop.iteration >= 3}",
                    "max_iterations": 5,
                },
            }
        ]
    }
    with anyio.fail_after(5):
        run = await engine_on(InMemoryRunStore()).run(spec)
    assert run.status.value == "succeeded", run.error
    assert [run.steps[f"parity#{k}"].output for k in (1, 2, 3)] == ["odd 1", "even 2", "odd 3"]
    assert statuses(run)["even#1"] == "skipped"
    assert statuses(run)["odd#2"] == "skipped"
    assert run.steps["refine"].output["parity"] == "odd 3"
