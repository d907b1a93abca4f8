"""Pipelines over MCP, with no API key: a stage that runs on the client hands its items to
the calling agent in batches, one client task per batch, answered with step_complete; a
wrong answer is refused with the shape expected and loses nothing; progress notifications
carry the pipeline's figures."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.server.mcp_support import MODES, call, connect, fail, tasks_of

pytestmark = pytest.mark.anyio


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_pipeline(n: int, batch: int) -> dict[str, Any]:
    """A builtin stage, a model stage (the client's, with no API key), a builtin stage."""
    return {
        "name": "client-pipeline",
        "type": "pipeline",
        "source": list(range(n)),
        "stages": [
            {"id": "name", "args": "n${item}"},
            {"id": "ask", "prompt": "Greet ${name.output}.", "batch": batch},
            {"id": "tag", "args": "<${ask.output}>"},
        ],
    }


def answers(task: dict[str, Any]) -> list[str]:
    return [f"hi {it['item_index']}" for it in task["inputs"]["items"]]


async def test_a_client_stage_of_25_items_in_batches_of_10_is_three_client_tasks(
    mode: str,
) -> None:
    handed: list[list[int]] = []
    told: list[list[tuple[float, float | None, str | None]]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        told[-1].append((progress, total, message))

    with anyio.fail_after(30):
        async with connect(mode) as c:
            told.append([])
            run = await call(
                c, "workflow_start", on_progress, spec=client_pipeline(25, 10), wait_s=10
            )
            rid = run["run_id"]
            while run["status"] != "succeeded":
                assert run["status"] == "running", run
                (task,) = tasks_of(run).values()
                assert task["step_id"] == "pipeline" and task["output"] == "json"
                handed.append([it["item_index"] for it in task["inputs"]["items"]])
                for it in task["inputs"]["items"]:  # each item, with its index and prompt
                    i = it["item_index"]
                    assert f"## Item {i}\nGreet n{i}." in task["instructions"]
                told.append([])
                run = await call(
                    c,
                    "step_complete",
                    on_progress,
                    run_id=rid,
                    step_id="pipeline",
                    output=answers(task),
                )
            result = await call(c, "workflow_result", run_id=rid)
    assert handed == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    assert result["outputs"]["pipeline"] == [f"<hi {i}>" for i in range(25)]
    figures = result["pipelines"]["pipeline"]
    assert (figures["items"], figures["dead"]) == (25, 0)
    assert figures["stages"]["ask"]["done"] == 25
    # each call's progress notifications carry the pipeline's figures, counting up
    for call_told in told:
        assert [p for p, _, _ in call_told] == sorted(p for p, _, _ in call_told)
        assert all(total is not None and total >= p for p, total, _ in call_told)
    messages = [m or "" for call_told in told for _, _, m in call_told]
    # when the second and third batches were handed (by the step_complete calls, which wait
    # on the run; workflow_start may find the first batch handed before it waits, and then
    # has nothing to tell)
    for done, waiting in ((10, 15), (20, 5)):
        figures_then = f"pipeline: {done} item(s) done, 0 dead, 0 in flight, {waiting} waiting"
        assert any(figures_then in m for m in messages), messages
    assert any("done by stage: name 25, ask 10, tag 10" in m for m in messages), messages


async def test_a_wrong_answer_is_refused_with_the_shape_expected_and_loses_nothing(
    mode: str,
) -> None:
    with anyio.fail_after(30):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=client_pipeline(3, 10), wait_s=10)
            rid = run["run_id"]
            task = tasks_of(run)["pipeline"]
            short = await fail(c, "step_complete", run_id=rid, step_id="pipeline", output=["a"])
            keyed = await fail(
                c, "step_complete", run_id=rid, step_id="pipeline", output={"0": "a", "7": "b"}
            )
            # still waiting, the same task: nothing was taken
            again = await call(c, "workflow_status", run_id=rid)
            assert tasks_of(again)["pipeline"] == task
            # an object keyed by item index; item 1 reported failed (no retries: dead)
            run = await call(
                c,
                "step_complete",
                run_id=rid,
                step_id="pipeline",
                output={"0": "a", "1": {"error": "no such file"}, "2": "c"},
            )
            result = await call(c, "workflow_result", run_id=rid)
    expected = (
        "this task lists 3 item(s) (item_index 0 to 2): answer output=[...] with exactly 3 "
        "outputs in that order, or an object keyed by item index"
    )
    assert "the answer is a list of 1 output(s); " + expected in short
    assert "the answer has missing item(s) 1, 2; no item(s) 7; " + expected in keyed
    assert run["status"] == "failed", run
    assert result["pipelines"]["pipeline"]["dead_letters"] == [
        {
            "item_index": 1,
            "stage": "ask",
            "error": "the client reported: no such file",
            "attempts": 1,
            "item": 1,
        }
    ]
    assert "1 item(s) failed a stage after their retries" in result["steps"]["pipeline"]["error"]
