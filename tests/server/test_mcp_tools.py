"""The MCP surface, driven through an in-process client in both protocol generations
(`legacy`: the 2025-11-25 handshake; `auto`: the negotiated 2026-07-28 protocol): the
tools, prompts and resources, planning, starting and watching runs, the errors each tool
gives back, and the size and shape of the tool list. Runs end to end: test_mcp_runs.py.

Each test has a fresh server on an in-memory database; every interaction is bounded."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import ListToolsResult, TextResourceContents

from tests.seed import SEED_CHAIN
from tests.server.mcp_support import (
    BUILTIN_CHAIN,
    ONE_CLIENT_STEP,
    call,
    connect,
    fail,
    settings,
    slow_spec,
    tasks_of,
)

pytestmark = pytest.mark.anyio

TOOLS = {
    "workflow_plan",
    "workflow_start",
    "workflow_status",
    "workflow_result",
    "workflow_cancel",
    "workflow_resume",
    "workflow_list",
    "checkpoint_list",
    "step_complete",
    "memory",
    "memory_search",
    "memory_history",
}
PROMPTS = {"chain", "flow", "swarm", "pipeline", "resume"}
SNAPSHOT = Path(__file__).with_name("tools_snapshot.json")
UPDATE_SNAPSHOT = "TUTTI_UPDATE_SNAPSHOT"
# characters: every tool definition is read into the client's context (11,724 legacy and
# 11,806 auto with the memory tools)
TOOLS_LIST_BUDGET = 12_000


def resource_text(contents: list[Any]) -> str:
    assert len(contents) == 1
    assert isinstance(contents[0], TextResourceContents)
    return contents[0].text


# -- listing ---------------------------------------------------------------------------------
async def test_lists_tools_prompts_and_resources(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS
            assert {p.name for p in (await c.list_prompts()).prompts} == PROMPTS
            assert [str(r.uri) for r in (await c.list_resources()).resources] == ["workflow://runs"]
            templates = (await c.list_resource_templates()).resource_templates
            assert {t.uri_template for t in templates} == {
                "workflow://runs/{run_id}",
                "workflow://runs/{run_id}/report",
                "memory://memories{+path}",
                "memory://project/{key}/memories{+path}",
                "memory://workflow/{name}/memories{+path}",
            }


@pytest.mark.parametrize(
    ("name", "args", "mentions"),
    [
        ("chain", {"request": "audit the payments module"}, ["workflow_plan", "workflow_start"]),
        ("flow", {"request": "triage the new bug reports"}, ["workflow_plan", "workflow_start"]),
        (
            "swarm",
            {"request": "review the API design", "agents": "4"},
            ["workflow_plan", "workflow_start", "4 specialists"],
        ),
        (
            "pipeline",
            {"request": "summarise each chapter", "items": "ch1, ch2"},
            ["workflow_plan", "workflow_start", "ch1, ch2"],
        ),
        ("resume", {"run_id": "run_x_1234"}, ["workflow_resume", "workflow_result"]),
    ],
)
async def test_prompts_drive_the_tools(
    mode: str, name: str, args: dict[str, str], mentions: list[str]
) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            got = await c.get_prompt(name, args)
    text = "\n".join(getattr(m.content, "text", "") for m in got.messages)
    for word in [*mentions, *args.values()]:
        assert word in text, f"prompt {name} does not mention {word!r}"


# -- workflow_plan ---------------------------------------------------------------------------
PLANNED = {
    "name": "planned",
    "steps": [
        {"id": "a", "prompt": "Survey the design space.", "thinking": "extended"},
        {"id": "b", "op": "template", "args": "fixed"},
        {
            "id": "c",
            "depends_on": ["a"],
            "prompt": "Pick one of ${a.output}",
            "thinking": "instant",
        },
        {"id": "d", "depends_on": ["b", "c"], "op": "template", "args": "${b.output} ${c.output}"},
    ],
}


async def test_plan_with_api_key(mode: str) -> None:
    # with a key, model steps run on the API: no request is made by planning
    config = settings(api_key="test", base_url="http://127.0.0.1:9")
    with anyio.fail_after(20):
        async with connect(mode, config) as c:
            plan = await call(c, "workflow_plan", spec=PLANNED)
    assert plan["name"] == "planned"
    assert plan["mode"] == "chain" and plan["mode_reason"]
    assert plan["groups"] == [["a", "b"], ["c"], ["d"]]
    assert plan["critical_path"] == ["a", "c", "d"]
    assert plan["critical_path_s"] > 0 and plan["estimated_s"] > 0
    assert plan["mermaid"].startswith("flowchart")
    assert "a --> c" in plan["mermaid"] and "c --> d" in plan["mermaid"]
    steps = plan["steps"]
    assert {sid: s["executor"] for sid, s in steps.items()} == {
        "a": "prompt",
        "b": "builtin",
        "c": "prompt",
        "d": "builtin",
    }
    assert steps["a"]["thinking"] == "extended" and steps["c"]["thinking"] == "instant"
    assert steps["a"]["thinking_reason"] and steps["b"]["thinking"] is None
    cost = plan["cost"]
    assert 0 < cost["usd_low"] < cost["usd_high"]
    assert set(cost["steps"]) == {"a", "c"}
    # extended thinking may write far more than instant
    assert cost["steps"]["a"]["usd_high"] > cost["steps"]["c"]["usd_high"]
    assert "workflow_start" in plan["next"]


async def test_plan_without_api_key_hands_model_steps_to_the_client(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            plan = await call(c, "workflow_plan", spec=PLANNED)
            seed = await call(c, "workflow_plan", spec=SEED_CHAIN)
    assert plan["steps"]["a"]["executor"] == "client"
    assert plan["steps"]["a"]["thinking"] == "extended"  # still a hint for the client
    assert plan["cost"]["usd_low"] == plan["cost"]["usd_high"] == 0
    assert plan["cost"]["steps"] == {}
    assert seed["mode"] == "chain"
    assert seed["groups"] == [["analyze_codebase"], ["fix_issues"], ["validate_fixes"]]
    assert seed["critical_path"] == ["analyze_codebase", "fix_issues", "validate_fixes"]
    assert all(s["executor"] == "client" for s in seed["steps"].values())


async def test_plan_labels_and_prices_each_step_by_where_it_will_run(mode: str) -> None:
    # no API key: the model steps go to the client, and the graph and the cost say so
    mixed = {**PLANNED, "steps": [*PLANNED["steps"], {"id": "e", "prompt": "x", "run": "prompt"}]}
    with anyio.fail_after(20):
        async with connect(mode) as c:
            plan = await call(c, "workflow_plan", spec=mixed)
    nodes = dict(re.findall(r'^  (\w)\["\w<br/>(\w+)"\]$', plan["mermaid"], re.M))
    assert nodes == {"a": "client", "b": "builtin", "c": "client", "d": "builtin", "e": "prompt"}
    assert {sid: s["executor"] for sid, s in plan["steps"].items()} == nodes
    # only the step that asks for the API (run: prompt) is priced
    assert set(plan["cost"]["steps"]) == {"e"}
    assert plan["cost"]["usd_low"] == plan["cost"]["steps"]["e"]["usd_low"] > 0


async def test_spec_as_json_text_yaml_text_or_file_path(mode: str) -> None:
    yaml_text = "name: yamled\nsteps:\n  - id: a\n    args: hi\n  - id: b\n    args: ${a.output}!\n"
    with anyio.fail_after(20):
        async with connect(mode) as c:
            as_json = await call(c, "workflow_plan", spec=json.dumps(BUILTIN_CHAIN))
            as_yaml = await call(c, "workflow_plan", spec=yaml_text)
            as_path = await call(c, "workflow_plan", spec="examples/repo-stats.yaml")
            missing = await fail(c, "workflow_plan", spec="examples/nope.yaml")
    assert as_json["name"] == "builtin-chain"
    assert as_yaml["name"] == "yamled" and as_yaml["groups"] == [["a"], ["b"]]
    assert as_path["name"] == "repo-stats"
    # shell is off on this server: the plan stands, and says what is missing
    assert "TUTTI_ALLOW_SHELL" in as_path["next"]
    assert "no spec file at" in missing and "nope.yaml" in missing


# -- workflow_start / workflow_status --------------------------------------------------------
async def test_start_with_wait_runs_a_builtin_workflow_to_the_end(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=10)
    assert run["status"] == "succeeded"
    assert run["done"] == run["total"] == 3
    assert run["outputs"] == {"a": "hello", "b": "hello world", "c": "<hello world>"}
    assert run["errors"] == {} and run["client_tasks"] == [] and run["error"] is None
    assert "workflow_result" in run["next"]


async def test_start_without_wait_returns_at_once_with_a_run_id(mode: str) -> None:
    config = settings(allow_shell=frozenset({"sleep"}))
    with anyio.fail_after(20):
        async with connect(mode, config) as c:
            with anyio.fail_after(5):  # the run takes 30 s; the answer may not wait for it
                run = await call(c, "workflow_start", spec=slow_spec("30"))
            assert run["run_id"].startswith("run_")
            assert run["status"] in ("pending", "running")
            assert "workflow_status" in run["next"]
            listed = await call(c, "workflow_list")
            assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]


async def test_start_with_wait_returns_the_client_tasks_it_waited_for(mode: str) -> None:
    """workflow_start(wait_s) waits until the run needs the caller, and its answer is the
    run as it is then: running, with the ready client task. (A regression guard: the wait
    once answered with the record it read before the run started, `pending` and without
    client_tasks, in a race that several fresh runs make show.)"""
    with anyio.fail_after(20):
        for _ in range(8):
            async with connect(mode) as c:
                run = await call(c, "workflow_start", spec=ONE_CLIENT_STEP, wait_s=10)
                assert run["status"] == "running", run
                assert run["steps"] == {"ask": "waiting"}, run
                assert [t["step_id"] for t in run["client_tasks"]] == ["ask"], run


async def test_status_long_poll_reports_progress(mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    config = settings(allow_shell=frozenset({"sleep"}))
    with anyio.fail_after(20):
        async with connect(mode, config) as c:
            # long enough that the first status call is waiting when it ends (0.3 s was not,
            # once in a loaded full run: no call saw the step finish, none reported it)
            run = await call(c, "workflow_start", spec=slow_spec("1.5"))
            rid = run["run_id"]
            for _ in range(10):  # each call returns when a step finishes
                run = await call(c, "workflow_status", on_progress, run_id=rid, wait_s=10)
                if run["status"] == "succeeded":
                    break
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"s": "", "t": "after s"}
    # the slow step finished while a status call waited: that call reported it
    assert (1, 2, "s succeeded") in seen, seen
    assert all(total == 2 for _, total, _ in seen)


async def test_status_returns_at_once_when_only_client_steps_wait(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=ONE_CLIENT_STEP, wait_s=10)
            assert set(tasks_of(run)) == {"ask"}
            with anyio.fail_after(10):  # far less than wait_s: nothing changes without us
                run = await call(c, "workflow_status", run_id=run["run_id"], wait_s=40)
    assert run["status"] == "running"
    assert [t["step_id"] for t in run["client_tasks"]] == ["ask"]
    assert "step_complete" in run["next"]


# -- errors ----------------------------------------------------------------------------------
async def test_step_complete_errors(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=10)
            rid = run["run_id"]
            assert set(tasks_of(run)) == {"analyze_codebase"}
            unknown_run = await fail(c, "step_complete", run_id="run_nope", step_id="x", output="y")
            not_yet = await fail(
                c, "step_complete", run_id=rid, step_id="validate_fixes", output="y"
            )
            both = await fail(
                c, "step_complete", run_id=rid, step_id="analyze_codebase", output="y", error="z"
            )
            neither = await fail(c, "step_complete", run_id=rid, step_id="analyze_codebase")
            await call(c, "step_complete", run_id=rid, step_id="analyze_codebase", output="ok")
            done = await fail(
                c, "step_complete", run_id=rid, step_id="analyze_codebase", output="again"
            )
    assert "run_nope" in unknown_run and "workflow_list" in unknown_run
    assert "validate_fixes" in not_yet and "not waiting" in not_yet
    assert "not both" in both
    assert "output=" in neither and "error=" in neither
    assert "analyze_codebase" in done and "not waiting" in done


async def test_step_complete_unknown_step_of_a_live_run(mode: str) -> None:
    """A step id the run does not have is named as such (as for a stopped run below), not
    reported as a step that is "not waiting"."""
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=SEED_CHAIN, wait_s=10)
            assert set(tasks_of(run)) == {"analyze_codebase"}  # live, waiting for us
            text = await fail(c, "step_complete", run_id=run["run_id"], step_id="zz", output="y")
    assert "no step 'zz'" in text, text


async def test_step_complete_unknown_step_of_a_stopped_run(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=10)
            text = await fail(c, "step_complete", run_id=run["run_id"], step_id="zz", output="y")
    assert "no step 'zz'" in text


async def test_tool_errors_say_what_to_do(mode: str) -> None:
    bad_ref = {
        "steps": [
            {"id": "a", "op": "template", "args": "x"},
            {"id": "b", "depends_on": ["zz"], "op": "template", "args": "y"},
        ]
    }
    cycle = {
        "steps": [
            {"id": "a", "depends_on": ["b"], "args": "x"},
            {"id": "b", "depends_on": ["a"], "args": "y"},
        ]
    }
    bad_field = {"steps": [{"id": "a", "args": "x"}, {"id": "b", "timeout": -1, "args": "y"}]}
    with anyio.fail_after(20):
        async with connect(mode) as c:
            ref = await fail(c, "workflow_plan", spec=bad_ref)
            ref_at_start = await fail(c, "workflow_start", spec=bad_ref)
            loop = await fail(c, "workflow_plan", spec=cycle)
            field = await fail(c, "workflow_plan", spec=bad_field)
            unknown = await fail(c, "workflow_status", run_id="run_nope")
            unknown_result = await fail(c, "workflow_result", run_id="run_nope")
            too_long = await fail(c, "workflow_status", run_id="run_nope", wait_s=46)
            status_filter = await fail(c, "workflow_list", status="done")
            run = await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=10)
            again = await fail(c, "workflow_resume", run_id=run["run_id"])
            bad_from = await fail(c, "workflow_resume", run_id=run["run_id"], from_step="zz")
            listed = await call(c, "workflow_list")
    assert "steps[1] (b).depends_on[0]" in ref and "'zz'" in ref
    assert "workflow_plan" in ref  # how to check a fixed spec
    assert "steps[1] (b).depends_on[0]" in ref_at_start
    assert "cycle" in loop and "a -> b -> a" in loop
    assert "steps[1] (b).timeout" in field
    for text in (unknown, unknown_result):
        assert "run_nope" in text and "workflow_list" in text
    assert "wait_s" in too_long and "45" in too_long
    assert "'done'" in status_filter
    for status in ("running", "waiting", "succeeded", "failed", "cancelled", "interrupted"):
        assert status in status_filter
    assert "succeeded" in again and "from_step" in again  # how to run it again: fork
    assert "'zz'" in bad_from and "a, b, c" in bad_from
    # a refused spec started nothing
    assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]


async def test_workflow_list_filters_and_limits(mode: str) -> None:
    broken = {  # valid, but fails when it runs
        "steps": [
            {"id": "a", "op": "template", "args": "A"},
            {"id": "b", "depends_on": ["a"], "op": "template", "args": "${a.output.nope}"},
        ]
    }
    with anyio.fail_after(20):
        async with connect(mode) as c:
            ok = [await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=10) for _ in range(3)]
            bad = await call(c, "workflow_start", spec={**broken, "name": "broken"}, wait_s=10)
            everything = await call(c, "workflow_list")
            failed = await call(c, "workflow_list", status="failed")
            two = await call(c, "workflow_list", limit=2)
    assert bad["status"] == "failed"
    assert [r["run_id"] for r in everything["runs"]] == [
        bad["run_id"],
        *[r["run_id"] for r in reversed(ok)],
    ]  # newest first
    assert [(r["run_id"], r["name"]) for r in failed["runs"]] == [(bad["run_id"], "broken")]
    assert failed["runs"][0]["error"]
    assert len(two["runs"]) == 2


# -- resources -------------------------------------------------------------------------------
async def test_resources(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            run = await call(c, "workflow_start", spec=BUILTIN_CHAIN, wait_s=10)
            rid = run["run_id"]
            runs = json.loads(resource_text((await c.read_resource("workflow://runs")).contents))
            state = json.loads(
                resource_text((await c.read_resource(f"workflow://runs/{rid}")).contents)
            )
            report = resource_text(
                (await c.read_resource(f"workflow://runs/{rid}/report")).contents
            )
    assert [(r["run_id"], r["status"]) for r in runs["runs"]] == [(rid, "succeeded")]
    assert state["run_id"] == rid and state["status"] == "succeeded"
    assert state["outputs"] == {"a": "hello", "b": "hello world", "c": "<hello world>"}
    assert report.startswith(f"# builtin-chain `{rid}`: succeeded")
    assert "| step | status | attempts | seconds | executor | note |" in report
    assert "| a | succeeded | 1 |" in report
    assert "Critical path: a -> b -> c" in report


async def test_resource_of_an_unknown_run_says_what_to_do(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            for uri in ("workflow://runs/run_nope", "workflow://runs/run_nope/report"):
                with pytest.raises(MCPError) as err:
                    await c.read_resource(uri)
                text = str(err.value)
                assert "run_nope" in text and "workflow_list" in text, text


# -- the tool surface ------------------------------------------------------------------------
async def _tools(mode: str) -> ListToolsResult:
    async with connect(mode) as c:
        return await c.list_tools()


async def test_tools_list_fits_the_context_budget(mode: str) -> None:
    with anyio.fail_after(20):
        listing = await _tools(mode)
    size = len(listing.model_dump_json(by_alias=True, exclude_none=True))
    sizes = {
        t.name: len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in listing.tools
    }
    assert size < TOOLS_LIST_BUDGET, f"tools/list is {size} characters; per tool: {sizes}"


def _value_schemas(schema: Any, path: str) -> list[str]:
    """Where a schema gives a map's values a schema of their own."""
    if isinstance(schema, list):
        return [p for i, sub in enumerate(schema) for p in _value_schemas(sub, f"{path}/{i}")]
    if not isinstance(schema, dict):
        return []
    found = [path] if isinstance(schema.get("additionalProperties"), dict) else []
    return found + [p for key, sub in schema.items() for p in _value_schemas(sub, f"{path}/{key}")]


async def test_output_schemas_give_maps_no_value_schema_for_clients_to_check_entry_by_entry(
    mode: str,
) -> None:
    """A client that validates answers (the SDK's client does, on every call) would check
    each entry of a map with a value schema: every step_complete answer of a long run once
    per step of the run."""
    with anyio.fail_after(20):
        listing = await _tools(mode)
    typed_maps = [
        p for t in listing.tools if t.output_schema for p in _value_schemas(t.output_schema, t.name)
    ]
    assert typed_maps == []


async def test_tools_snapshot(mode: str) -> None:
    """Tool names and input schemas change only on purpose: regenerate the snapshot with
    TUTTI_UPDATE_SNAPSHOT=1 uv run pytest tests/server/test_mcp_tools.py -k snapshot"""
    with anyio.fail_after(20):
        listing = await _tools(mode)
    current = {
        t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True)["inputSchema"]
        for t in listing.tools
    }
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if os.environ.get(UPDATE_SNAPSHOT):
        SNAPSHOT.write_text(text, encoding="utf-8")
        return
    assert SNAPSHOT.is_file(), f"no {SNAPSHOT.name}; create it with {UPDATE_SNAPSHOT}=1"
    stored = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    if stored != current:
        added = sorted(set(current) - set(stored))
        removed = sorted(set(stored) - set(current))
        changed = sorted(n for n in set(stored) & set(current) if stored[n] != current[n])
        pytest.fail(
            f"the tool surface changed (added {added}, removed {removed}, input schema changed "
            f"{changed}). If that is on purpose, regenerate the snapshot: "
            f"{UPDATE_SNAPSHOT}=1 uv run pytest tests/server/test_mcp_tools.py -k snapshot"
        )
