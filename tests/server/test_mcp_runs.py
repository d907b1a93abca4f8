"""Runs driven through the MCP tools, in both protocol generations: client steps end to
end, the prompt executor against the fake Messages API, failed runs, cancel / resume /
fork, and checkpoints. Each test has a fresh server on an in-memory database; every
interaction is bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from tests.fake_anthropic import FakeAnthropic, message
from tests.seed import SEED_CHAIN
from tests.server.mcp_support import (
    BUILTIN_CHAIN,
    DIAMOND,
    FORKABLE,
    ONE_CLIENT_STEP,
    call,
    connect,
    fail,
    settings,
    slow_spec,
    tasks_of,
    text_of,
)

pytestmark = pytest.mark.anyio


# -- client steps end to end -----------------------------------------------------------------
async def test_seed_chain_with_client_steps_end_to_end(mode: str) -> None:
    answers = {
        "analyze_codebase": "SQL injection in db.py line 12",
        "fix_issues": "parameterised the query in db.py",
        "validate_fixes": "bandit: no issues",
    }
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=10)
            rid = run["run_id"]
            tasks = tasks_of(run)
            seen = []
            while tasks:
                assert len(tasks) == 1  # a chain: one step at a time
                ((sid, task),) = tasks.items()
                seen.append(sid)
                if sid == "analyze_codebase":
                    assert task["instructions"] == "analyze Python security vulnerabilities"
                    assert task["inputs"] == {}
                    assert "Investigate" in task["system"]  # /query's system prompt
                if sid == "fix_issues":
                    # `${analyze_codebase.results}` is rendered from the reported output
                    assert (
                        task["instructions"]
                        == f"fix security issues: {answers['analyze_codebase']}"
                    )
                    assert task["inputs"] == {"analyze_codebase": answers["analyze_codebase"]}
                assert task["thinking"] in ("instant", "standard", "extended")
                assert task["output"] == "text"
                run = await call(c, "step_complete", run_id=rid, step_id=sid, output=answers[sid])
                tasks = {t["step_id"]: t for t in run["client_tasks"]}
            assert seen == list(answers)
            assert run["status"] == "succeeded"
            result = await call(c, "workflow_result", run_id=rid)
    assert result["status"] == "succeeded"
    assert result["outputs"] == answers
    assert {s["executor"] for s in result["steps"].values()} == {"client"}
    assert result["recovery"] is None
    assert result["metrics"]["critical_path"] == list(answers)


async def test_diamond_hands_out_both_client_tasks_together(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=DIAMOND, wait_s=10)
            rid = run["run_id"]
            tasks = tasks_of(run)
            assert set(tasks) == {"b", "c"}  # independent: handed out at once
            assert tasks["b"]["instructions"] == "left of A"
            assert tasks["c"]["instructions"] == "right of A"
            assert tasks["b"]["inputs"] == tasks["c"]["inputs"] == {"a": "A"}
            assert tasks["b"]["thinking"] == "instant"
            assert tasks["c"]["thinking"] == "extended"
            assert (tasks["b"]["output"], tasks["c"]["output"]) == ("text", "json")
            assert "JSON" in tasks["c"]["system"]

            # an answer that is not JSON for an `output: json` step: refused, still waiting
            bad = await fail(c, "step_complete", run_id=rid, step_id="c", output="seven")
            assert "JSON" in bad

            answers: dict[str, dict[str, Any]] = {}

            async def complete(sid: str, output: str) -> None:
                answers[sid] = await call(
                    c, "step_complete", run_id=rid, step_id=sid, output=output
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(complete, "b", "L")
                tg.start_soon(complete, "c", '{"v": 7}')
            assert "succeeded" in {answers["b"]["status"], answers["c"]["status"]}
            result = await call(c, "workflow_result", run_id=rid)
    assert result["status"] == "succeeded"
    assert result["outputs"] == {"a": "A", "b": "L", "c": {"v": 7}, "d": "L+7"}


PAIR: dict[str, Any] = {
    "name": "pair",
    "steps": [
        {"id": "x", "prompt": "X", "run": "client"},
        {"id": "y", "prompt": "Y", "run": "client"},
        {"id": "z", "depends_on": ["x", "y"], "op": "template", "args": "${x.output}${y.output}"},
    ],
}


async def test_back_to_back_step_completes_keep_the_run_going(mode: str) -> None:
    """Two ready client tasks reported one right after the other, or at once (an agent
    doing them in parallel), must both be taken and the run must finish. A race between a
    report and the runner's own bookkeeping can end the run instead; several runs make it
    show."""
    with anyio.fail_after(20):
        async with connect(mode) as c:
            for i in range(30):
                run = await call(c, "workflow_start", spec=PAIR, wait_s=10)
                rid = run["run_id"]
                assert set(tasks_of(run)) == {"x", "y"}
                errors: list[str] = []

                async def complete(sid: str, rid: str = rid, errors: list[str] = errors) -> None:
                    res = await c.call_tool(
                        "step_complete", {"run_id": rid, "step_id": sid, "output": sid}
                    )
                    if res.is_error:
                        errors.append(f"{sid}: {text_of(res)}")

                if i % 2:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(complete, "x")
                        tg.start_soon(complete, "y")
                else:
                    await complete("x")
                    await complete("y")
                result = await call(c, "workflow_result", run_id=rid)
                assert not errors, f"run {i}: step_complete failed: {errors}"
                assert result["status"] == "succeeded", f"run {i}: {result['error']}"
                assert result["outputs"]["z"] == "xy"


# -- the prompt executor, on the fake Messages API -------------------------------------------
async def test_seed_chain_on_the_prompt_executor(mode: str, fake_anthropic: FakeAnthropic) -> None:
    texts = ["found: eval() in app.py", "replaced eval with ast.literal_eval", "validated: clean"]
    fake_anthropic.script(*(message(t) for t in texts))
    config = settings(api_key="test", base_url=fake_anthropic.base_url, api_retries=0)
    with anyio.fail_after(20):
        async with connect(mode, config) as c:
            plan = await call(c, "workflow_plan", spec=SEED_CHAIN)
            assert {s["executor"] for s in plan["steps"].values()} == {"prompt"}
            run = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=15)
            assert run["status"] == "succeeded", run
            result = await call(c, "workflow_result", run_id=run["run_id"])
    ids = ["analyze_codebase", "fix_issues", "validate_fixes"]
    assert result["outputs"] == dict(zip(ids, texts, strict=True))
    # the model's capabilities asked once (plan and run share them), then one call per step
    assert [r.path for r in fake_anthropic.requests] == ["/v1/models/claude-sonnet-5-5"] + [
        "/v1/messages"
    ] * 3
    bodies = [json.dumps(r.body) for r in fake_anthropic.requests[1:]]
    assert "analyze Python security vulnerabilities" in bodies[0]
    assert f"fix security issues: {texts[0]}" in bodies[1]  # the chain carries outputs on
    assert "run security validation" in bodies[2]
    assert {s["executor"] for s in result["steps"].values()} == {"prompt"}
    assert result["metrics"]["tokens"]["input_tokens"] == 30  # 10 per fake reply


# -- failures --------------------------------------------------------------------------------
async def test_result_of_a_run_failed_on_a_template(mode: str) -> None:
    spec = {
        "name": "broken",
        "steps": [
            {"id": "a", "op": "template", "args": "A"},
            {"id": "b", "depends_on": ["a"], "op": "template", "args": "${a.output.missing.key}"},
            {"id": "c", "op": "template", "args": "C"},
            {"id": "d", "depends_on": ["b"], "op": "template", "args": "D"},
        ],
    }
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=spec, wait_s=10)
            assert run["status"] == "failed"
            assert "workflow_result" in run["next"]
            result = await call(c, "workflow_result", run_id=run["run_id"])
    assert result["status"] == "failed"
    assert "b" in result["error"]
    assert result["outputs"] == {"a": "A", "c": "C"}  # the partial outputs
    assert result["steps"]["b"]["status"] == "failed"
    assert "missing" in result["steps"]["b"]["error"]
    assert result["steps"]["d"]["status"] == "pending"
    recovery = result["recovery"]
    failure = recovery["failures"]["b"]
    assert failure["kind"] == "TemplateError" and failure["retryable"] is False
    assert "template" in failure["hint"]
    assert recovery["resume"] == {
        "keeps_committed": ["a", "c"],
        "reruns": ["b"],
        "then_runs": ["d"],
        "waiting_for_client": [],
    }
    assert recovery["command"] == f"workflow_resume('{run['run_id']}')"


async def test_result_of_a_run_whose_client_step_failed(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=10)
            rid = run["run_id"]
            assert set(tasks_of(run)) == {"analyze_codebase"}
            run = await call(
                c, "step_complete", run_id=rid, step_id="analyze_codebase", output="found one"
            )
            assert [t["step_id"] for t in run["client_tasks"]] == ["fix_issues"]
            run = await call(
                c, "step_complete", run_id=rid, step_id="fix_issues", error="no write access"
            )
            assert run["status"] == "failed"
            assert run["errors"] == {"fix_issues": "the client reported: no write access"}
            result = await call(c, "workflow_result", run_id=rid)
    assert result["outputs"] == {"analyze_codebase": "found one"}
    assert result["recovery"]["failures"]["fix_issues"]["error"] == (
        "the client reported: no write access"
    )
    assert result["recovery"]["resume"]["keeps_committed"] == ["analyze_codebase"]
    assert result["recovery"]["resume"]["reruns"] == ["fix_issues"]
    assert result["recovery"]["resume"]["then_runs"] == ["validate_fixes"]
    assert "workflow_resume" in result["next"]


# -- cancel, resume, fork --------------------------------------------------------------------
async def test_cancel_a_live_run(mode: str) -> None:
    config = settings(allow_shell=frozenset({"sleep"}))
    with anyio.fail_after(20):
        async with connect(mode, config) as c:
            # wait_s runs out while `s` sleeps: the answer comes back with it running
            run = await call(c, "workflow_start", spec=slow_spec("30"), wait_s=0.2)
            rid = run["run_id"]
            before = await call(c, "workflow_result", run_id=rid)
            assert before["steps"]["s"]["status"] == "running"
            with anyio.fail_after(10):  # the sleep is killed, not waited for
                cancelled = await call(c, "workflow_cancel", run_id=rid)
            assert cancelled["status"] == "cancelled"
            assert cancelled["cancelled"] == ["s"]
            assert "workflow_resume" in cancelled["next"]
            result = await call(c, "workflow_result", run_id=rid)
            assert result["status"] == "cancelled"
            assert result["steps"]["s"]["status"] == "cancelled"
            assert result["steps"]["t"]["status"] == "pending"
            again = await fail(c, "workflow_cancel", run_id=rid)
    assert "already cancelled" in again


async def test_cancel_withdraws_client_tasks_and_resume_hands_them_out_again(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=ONE_CLIENT_STEP, wait_s=5)
            rid = run["run_id"]
            (task,) = tasks_of(run)
            cancelled = await call(c, "workflow_cancel", run_id=rid)
            assert cancelled["status"] == "cancelled" and cancelled["cancelled"] == [task]
            status = await call(c, "workflow_status", run_id=rid)
            assert status["client_tasks"] == [] and "workflow_resume" in status["next"]
            late = await fail(c, "step_complete", run_id=rid, step_id=task, output="late")
            assert "cancelled" in late and "not waiting" in late
            resumed = await call(c, "workflow_resume", run_id=rid, wait_s=5)
            assert list(tasks_of(resumed)) == [task]
            done = await call(c, "step_complete", run_id=rid, step_id=task, output="now")
    assert done["status"] == "succeeded"


def _counting_spec() -> dict[str, Any]:
    """`count` appends to a file each time it runs; `slow` sleeps the first time only."""
    return {
        "name": "resumable",
        "steps": [
            {"id": "count", "argv": ["sh", "-c", "echo ran >> count.log; wc -l < count.log"]},
            {
                "id": "slow",
                "depends_on": ["count"],
                "argv": [
                    "sh",
                    "-c",
                    "if [ -e slow.done ]; then echo fast; else touch slow.done; exec sleep 30; fi",
                ],
            },
            {
                "id": "end",
                "depends_on": ["slow"],
                "op": "template",
                "args": "${count.output | trim}/${slow.output | trim}",
            },
        ],
    }


async def test_resume_in_place_after_cancel(mode: str, tmp_path: Path) -> None:
    config = settings(allow_shell=frozenset({"sh"}))
    with anyio.fail_after(20):
        async with connect(mode, config, workspace=tmp_path) as c:
            run = await call(c, "workflow_start", spec=_counting_spec(), wait_s=0.2)
            rid = run["run_id"]
            assert (await call(c, "workflow_result", run_id=rid))["steps"]["slow"][
                "status"
            ] == "running"
            await call(c, "workflow_cancel", run_id=rid)
            resumed = await call(c, "workflow_resume", run_id=rid, wait_s=10)
            assert resumed["run_id"] == rid and resumed["forked_from"] is None
            assert resumed["kept"] == ["count"]
            assert resumed["status"] == "succeeded", resumed
            result = await call(c, "workflow_result", run_id=rid)
            checkpoints = await call(c, "checkpoint_list", run_id=rid)
    assert (tmp_path / "count.log").read_text() == "ran\n"  # committed: not run again
    assert result["outputs"]["end"] == "1/fast"
    assert result["steps"]["count"]["attempts"] == 1
    assert result["steps"]["slow"]["attempts"] == 2  # cancelled once, then run again
    assert [cp["step_id"] for cp in checkpoints["checkpoints"]] == ["count", "slow", "end"]


async def test_resumed_run_reports_no_stale_error(mode: str) -> None:
    """Once a cancelled run runs again, its answers must not carry the old error."""
    config = settings(allow_shell=frozenset({"sleep"}))
    with anyio.fail_after(20):
        async with connect(mode, config) as c:
            run = await call(c, "workflow_start", spec=slow_spec("30"), wait_s=0.2)
            rid = run["run_id"]
            await call(c, "workflow_cancel", run_id=rid)
            resumed = await call(c, "workflow_resume", run_id=rid, wait_s=0.2)
            result = await call(c, "workflow_result", run_id=rid)
            await call(c, "workflow_cancel", run_id=rid)
    assert resumed["status"] == result["status"] == "running"
    assert resumed["error"] is None, resumed["error"]
    assert result["error"] is None, result["error"]


async def _finish_forkable(c: Client) -> str:
    """Run FORKABLE with answers a1, b1, c1; its run id."""
    run = await call(c, "workflow_start", spec=FORKABLE, wait_s=10)
    rid: str = run["run_id"]
    tasks = tasks_of(run)
    assert set(tasks) == {"a", "b"}
    assert tasks["a"]["instructions"] == "A about one"
    await call(c, "step_complete", run_id=rid, step_id="b", output="b1")
    run = await call(c, "step_complete", run_id=rid, step_id="a", output="a1")
    assert [t["step_id"] for t in run["client_tasks"]] == ["c"]
    run = await call(c, "step_complete", run_id=rid, step_id="c", output="c1")
    assert run["status"] == "succeeded"
    assert run["outputs"]["d"] == "b1|c1"
    return rid


async def test_fork_from_step(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            parent = await _finish_forkable(c)
            fork = await call(c, "workflow_resume", run_id=parent, from_step="c", wait_s=10)
            fid = fork["run_id"]
            assert fid != parent and fork["forked_from"] == parent
            assert fork["kept"] == ["a", "b"]
            # only the redone step is asked for again; its inputs come from the kept ones
            tasks = tasks_of(fork)
            assert set(tasks) == {"c"}
            assert tasks["c"]["instructions"] == "C from a1"
            # the kept checkpoints, in the parent's commit order (b was reported first)
            kept = await call(c, "checkpoint_list", run_id=fid)
            assert [(cp["step_id"], cp["seq"], cp["output"]) for cp in kept["checkpoints"]] == [
                ("b", 1, "b1"),
                ("a", 2, "a1"),
            ]
            run = await call(c, "step_complete", run_id=fid, step_id="c", output="c2")
            assert run["status"] == "succeeded"
            result = await call(c, "workflow_result", run_id=fid)
            original = await call(c, "workflow_result", run_id=parent)
            listed = await call(c, "workflow_list")
    assert result["outputs"] == {"a": "a1", "b": "b1", "c": "c2", "d": "b1|c2"}  # d redone
    assert result["parent_run_id"] == parent
    assert original["outputs"]["d"] == "b1|c1"  # the parent is untouched
    by_id = {r["run_id"]: r for r in listed["runs"]}
    assert by_id[fid]["parent_run_id"] == parent and by_id[parent]["parent_run_id"] is None


async def test_fork_with_changed_inputs(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            parent = await _finish_forkable(c)
            fork = await call(c, "workflow_resume", run_id=parent, inputs={"y": "TWO"}, wait_s=10)
            fid = fork["run_id"]
            assert fork["forked_from"] == parent
            assert fork["kept"] == ["a", "c"]  # they do not read inputs.y
            tasks = tasks_of(fork)
            assert set(tasks) == {"b"}  # only the step that reads the changed input
            assert tasks["b"]["instructions"] == "B about TWO"
            run = await call(c, "step_complete", run_id=fid, step_id="b", output="b2")
            assert run["status"] == "succeeded"
            result = await call(c, "workflow_result", run_id=fid)
    assert result["inputs"] == {"x": "one", "y": "TWO"}
    assert result["outputs"] == {"a": "a1", "b": "b2", "c": "c1", "d": "b2|c1"}
    assert result["parent_run_id"] == parent


async def test_the_resume_answer_of_a_fork_names_its_parent_as_the_result_does(
    mode: str,
) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            parent = await _finish_forkable(c)
            fork = await call(c, "workflow_resume", run_id=parent, from_step="c", wait_s=10)
            result = await call(c, "workflow_result", run_id=fork["run_id"])
            # the fork waits on `c`; cancelled and resumed in place, it is still the fork
            await call(c, "workflow_cancel", run_id=fork["run_id"])
            again = await call(c, "workflow_resume", run_id=fork["run_id"], wait_s=10)
    assert (fork["parent_run_id"], result["parent_run_id"]) == (parent, parent)
    assert (again["run_id"], again["forked_from"], again["parent_run_id"]) == (
        fork["run_id"],
        None,
        parent,
    )


async def test_checkpoint_list_in_commit_order(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=10)
            listed = await call(c, "checkpoint_list", run_id=run["run_id"])
            waiting = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=10)
            assert set(tasks_of(waiting)) == {"analyze_codebase"}
            none_yet = await call(c, "checkpoint_list", run_id=waiting["run_id"])
    cps = listed["checkpoints"]
    assert [(cp["step_id"], cp["seq"], cp["status"]) for cp in cps] == [
        ("a", 1, "succeeded"),
        ("b", 2, "succeeded"),
        ("c", 3, "succeeded"),
    ]
    assert [cp["output"] for cp in cps] == ["hello", "hello world", "<hello world>"]
    assert none_yet == {"run_id": waiting["run_id"], "checkpoints": []}
