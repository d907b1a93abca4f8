"""The toolbox in a prompt step's tool-use loop, on the real `anthropic` SDK against the
local fake Messages API (strict about tool turns as the real API is): the tools sent, every
tool call of a turn answered in order, refusals as error results the model can act on, the
transcript stored with the step, the turn and token bounds, prompt caching with tools; and
the fake's own strictness."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic, estimated, message, tool_problem, tool_use, turn
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.executors.prompt import PromptExecutor
from tutti_mcp.engine.executors.sampling import SamplingExecutor, SamplingReply, SamplingRequest
from tutti_mcp.engine.executors.shell_policy import ShellPolicy
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, Step
from tutti_mcp.engine.step_prompts import system_prompt
from tutti_mcp.engine.toolbox.bash import ShellAccess
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.cli_output import run_json
from tutti_mcp.server.settings import Settings, build_engine

pytestmark = pytest.mark.anyio

MODEL = "claude-haiku-4-5"
PREAMBLE = system_prompt(Step(id="plain"))
WORKSPACE = (
    "Your tools ({}) act on the workspace: paths are relative to its root, and nothing "
    "outside it can be read."
)
ECHO_ONLY = ShellAccess(ShellPolicy({"echo"}))


def spec(tools: list[str], **step: Any) -> dict[str, Any]:
    fields = {"id": "audit", "prompt": "Find the TODOs.", "model": MODEL, "thinking": "instant"}
    return {"name": "audit", "steps": [{**fields, "tools": tools, **step}]}


def result(tool_use_id: str, content: str, *, is_error: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    return {**block, "is_error": True} if is_error else block


@pytest.fixture
async def store() -> AsyncIterator[SqliteRunStore]:
    async with await SqliteRunStore.open(":memory:") as s:
        yield s


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "README.md").write_text("# demo\nTODO: write docs\n")
    return tmp_path


async def run(
    fake: FakeAnthropic, store: SqliteRunStore, workflow: dict[str, Any], ws: Path, **kw: Any
) -> tuple[Engine, RunRecord]:
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake.base_url, max_retries=0
    ) as client:
        executor = PromptExecutor(client, **{"shell": ECHO_ONLY, **kw})
        engine = Engine(
            store, {ExecutorKind.PROMPT: executor}, EngineConfig(rand=lambda: 0.0, workspace=ws)
        )
        with anyio.fail_after(10):
            return engine, await engine.run(workflow)


async def test_the_model_greps_reads_and_runs_a_program_and_each_call_is_answered_in_order(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, ws: Path
) -> None:
    fake_anthropic.script(
        turn(
            tool_use("t1", {"pattern": "TODO"}, name="grep"),
            tool_use("t2", {"path": "README.md", "offset": 2}, name="read"),
        ),
        turn(
            tool_use("t3", {"argv": ["rm", "-rf", "."]}, name="bash"),
            tool_use("t4", {"argv": ["echo", "checked"]}, name="bash"),
            tool_use("t5", {"pattern": "*"}, name="web_search"),
        ),
        message("One TODO, in README.md line 2."),
    )

    engine, record = await run(fake_anthropic, store, spec(["/grep", "read", "bash"]), ws)

    step = record.steps["audit"]
    assert (record.status.value, step.output) == ("succeeded", "One TODO, in README.md line 2.")
    first = fake_anthropic.bodies[0]
    assert [t["name"] for t in first["tools"]] == ["grep", "read", "bash"]
    assert all(t["input_schema"]["type"] == "object" for t in first["tools"])
    assert "You may run: echo." in first["tools"][2]["description"]
    assert first["system"] == f"{PREAMBLE}\n\n{WORKSPACE.format('grep, read, bash')}"
    refusal = (
        "program 'rm' is not allowed (TUTTI_ALLOW_SHELL allows: echo); add it to "
        "TUTTI_ALLOW_SHELL to run it. You may run: echo"
    )
    assert [b["messages"][-1]["content"] for b in fake_anthropic.bodies[1:]] == [
        [result("t1", "README.md:2:TODO: write docs"), result("t2", "     2\tTODO: write docs")],
        [
            result("t3", refusal, is_error=True),
            result("t4", "exit code 0\n--- stdout ---\nchecked\n"),
            result(
                "t5",
                "unknown tool 'web_search': the tools here are `grep`, `read`, `bash`",
                is_error=True,
            ),
        ],
    ]
    assert (ws / "README.md").exists()

    stored = (await engine.load(record.id)).steps["audit"].usage or {}
    calls = stored["tool_calls"]
    assert [{k: c[k] for k in ("turn", "tool", "input", "is_error")} for c in calls] == [
        {"turn": 1, "tool": "grep", "input": '{"pattern": "TODO"}', "is_error": False},
        {
            "turn": 1,
            "tool": "read",
            "input": '{"path": "README.md", "offset": 2}',
            "is_error": False,
        },
        {"turn": 2, "tool": "bash", "input": '{"argv": ["rm", "-rf", "."]}', "is_error": True},
        {"turn": 2, "tool": "bash", "input": '{"argv": ["echo", "checked"]}', "is_error": False},
        {"turn": 2, "tool": "web_search", "input": '{"pattern": "*"}', "is_error": True},
    ]
    assert [c["result_bytes"] for c in calls][:2] == [28, 23]
    assert all(isinstance(c["ms"], int) and c["ms"] >= 0 for c in calls)
    assert stored["turns"] == 3
    shown = run_json(await engine.load(record.id))  # `tutti show --json`
    assert shown["steps"]["audit"]["usage"]["tool_calls"] == calls


async def test_long_arguments_are_cut_in_the_transcript(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, ws: Path
) -> None:
    fake_anthropic.script(
        turn(tool_use("t1", {"pattern": "x" * 2000}, name="grep")), message("none")
    )

    _, record = await run(fake_anthropic, store, spec(["grep"]), ws)

    (call,) = (record.steps["audit"].usage or {})["tool_calls"]
    assert (len(call["input"]), call["input"][-1]) == (500, "…")


async def test_a_model_that_keeps_calling_tools_stops_at_the_turn_bound_with_its_transcript(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, ws: Path
) -> None:
    fake_anthropic.script(
        *[turn(tool_use(f"t{i}", {"path": "README.md"}, name="read")) for i in range(5)]
    )

    _, record = await run(fake_anthropic, store, spec(["read", "grep"]), ws, max_turns=3)

    step = record.steps["audit"]
    assert (step.status.value, step.attempts) == ("failed", 1)
    assert step.error == (
        "claude-haiku-4-5 was still using its tools (read, grep) after 3 turns; ask for less "
        "in the prompt, or split the step"
    )
    assert dict(step.detail or {}).get("error_kind") == "tool_turns"
    assert len(fake_anthropic.requests) == 3
    # the failed attempt keeps its transcript: the two calls answered before the bound
    calls = step.failure.get("usage", {})["tool_calls"]
    assert [(c["tool"], c["is_error"]) for c in calls] == [("read", False), ("read", False)]


async def test_tool_use_stops_once_its_turns_used_more_tokens_than_the_budget(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, ws: Path
) -> None:
    fake_anthropic.script(
        *[turn(tool_use(f"t{i}", {"pattern": "*"}, name="glob"), input_tokens=80) for i in range(5)]
    )

    _, record = await run(fake_anthropic, store, spec(["glob"]), ws, max_loop_tokens=100)

    step = record.steps["audit"]
    assert step.error == (
        "claude-haiku-4-5 had used 170 tokens over 2 turns of tool use, more than the 100 a "
        "step's tool use may; ask for less in the prompt, or split the step"
    )
    assert dict(step.detail or {}).get("error_kind") == "tool_turns"
    assert len(fake_anthropic.requests) == 2


async def test_steps_with_the_same_tools_and_a_long_context_share_the_cached_prefix(
    store: SqliteRunStore, ws: Path
) -> None:
    doc = "".join(f"Clause {i}: lot {i} ships in {i % 30 + 1} days. " for i in range(1000))
    workflow = {
        "inputs": {"doc": {"type": "string", "default": doc}},
        "steps": [
            {
                "id": "a",
                "prompt": "Q1",
                "model": MODEL,
                "thinking": "instant",
                "context": ["${inputs.doc}"],
                "tools": ["grep", "read"],
            },
            {
                "id": "b",
                "prompt": "Q2",
                "model": MODEL,
                "thinking": "instant",
                "context": ["${inputs.doc}"],
                "tools": ["grep", "read"],
                "depends_on": ["a"],
            },
        ],
    }
    fake = FakeAnthropic(default=estimated("ok", output_tokens=2), min_cache_tokens=1024).start()
    try:
        _, record = await run(fake, store, workflow, ws)
    finally:
        fake.stop()

    assert record.status.value == "succeeded"
    a, b = fake.bodies
    assert a["tools"] == b["tools"] and a["system"][0]["cache_control"] == {"type": "ephemeral"}
    reads = [(record.steps[s].usage or {})["cache_read_input_tokens"] for s in ("a", "b")]
    assert reads[0] == 0 and reads[1] > 4096


# -- where the step runs ---------------------------------------------------------------------
async def test_a_client_steps_handoff_lists_the_tools_it_may_use(ws: Path) -> None:
    workflow = spec(["/grep", "/glob", "/bash security-scan"], run="client")
    engine = Engine(
        InMemoryRunStore(), {ExecutorKind.CLIENT: ClientExecutor()}, EngineConfig(workspace=ws)
    )

    with anyio.fail_after(10):
        record = await engine.run(workflow)

    request = record.steps["audit"].request
    assert request["instructions"] == (
        "Find the TODOs.\n\nTools: this step grants grep, glob, bash:security-scan. With your "
        "own tools, you may grep/glob the workspace (read only: change no files); you may run "
        "only: security-scan (with further arguments after them). Use no other tool for this "
        "step."
    )


async def test_a_sampling_step_with_tools_is_refused_before_it_runs(ws: Path) -> None:
    async def sampler(request: SamplingRequest) -> SamplingReply:
        raise AssertionError("a refused step is never sampled")

    engine = Engine(
        InMemoryRunStore(),
        {ExecutorKind.SAMPLING: SamplingExecutor(sampler)},
        EngineConfig(workspace=ws),
    )

    with pytest.raises(ConfigurationError) as info, anyio.fail_after(10):
        await engine.run(spec(["grep"], run="sampling"))

    assert str(info.value) == (
        "cannot run this workflow:\n  - step 'audit' has tools (grep), but MCP sampling offers "
        "the model no tools: set `run: prompt` (with ANTHROPIC_API_KEY) to give it the toolbox, "
        "or `run: client` to hand the step to the calling agent"
    )


async def test_a_bash_grant_the_server_does_not_allow_is_refused_before_the_run(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, ws: Path
) -> None:
    with pytest.raises(ConfigurationError) as info:
        await run(fake_anthropic, store, spec(["bash:curl"]), ws)

    assert "step 'audit': grants bash:curl, which TUTTI_ALLOW_SHELL does not allow" in str(
        info.value
    )
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(
    ("allow", "cli", "policy", "named_only"),
    [
        (frozenset(), False, None, False),  # the server without TUTTI_ALLOW_SHELL: shell off
        (frozenset({"git", "wc"}), False, frozenset({"git", "wc"}), False),
        (frozenset(), True, None, True),  # `tutti run`: only what the file's grants name
    ],
)
async def test_build_engine_gives_the_bash_tool_the_shell_steps_policy(
    store: SqliteRunStore,
    tmp_path: Path,
    allow: frozenset[str],
    cli: bool,
    policy: frozenset[str] | None,
    named_only: bool,
) -> None:
    settings = Settings(db_path=tmp_path / "x.db", api_key="test", allow_shell=allow)

    engine = build_engine(settings, store, shell_allow_all=cli)

    prompt = engine.executors[ExecutorKind.PROMPT]
    assert isinstance(prompt, PromptExecutor)
    access = prompt.shell
    assert (access.policy and access.policy.allow, access.named_only) == (policy, named_only)
    assert (access.policy is None) == (not allow and not cli)


# -- the fake is as strict as the API ------------------------------------------------------------
def test_the_fake_rejects_a_tool_use_left_unanswered_or_an_answer_to_no_tool_use() -> None:
    tools = [{"name": "grep", "description": "", "input_schema": {"type": "object"}}]
    asked = {"role": "assistant", "content": [tool_use("t1", {}), tool_use("t2", {})]}
    user = {"role": "user", "content": "go"}

    def body(*messages: dict[str, Any]) -> dict[str, Any]:
        return {"tools": tools, "messages": [user, *messages]}

    answered = {"role": "user", "content": [result("t1", "a"), result("t2", "b")]}
    assert tool_problem(body(asked, answered)) is None
    half = {"role": "user", "content": [result("t1", "a")]}
    assert (tool_problem(body(asked, half)) or "").startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t2."
    )
    stray = {"role": "user", "content": [result("t9", "a")]}
    assert (tool_problem(body(stray)) or "").startswith(
        "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t9."
    )
    assert tool_problem({"messages": [user, asked, answered]}) == (
        "Requests which include `tool_use` or `tool_result` blocks must define tools."
    )
    empty_error = {"role": "user", "content": [result("t1", "", is_error=True), result("t2", "")]}
    assert "content cannot be empty" in (tool_problem(body(asked, empty_error)) or "")
    unnamed = {"tools": [{"name": "a b", "input_schema": {"type": "object"}}], "messages": [user]}
    assert "custom.name" in (tool_problem(unnamed) or "")
    assert json.dumps(tool_problem(body())) == "null"
