"""Memory for agents: a `prompt` step with `memory` gets Anthropic's memory tool, carried out
on tutti's memory store in a tool-use loop (the real `anthropic` SDK against the local fake
Messages API); client steps are told the scope; sampling steps are refused; spec checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic, message, text_block, thinking, tool_use, turn
from tutti_mcp.engine.agent_memory import MEMORY_TOOL, SYSTEM_LINE
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.executors.prompt import MAX_TURNS, PromptExecutor
from tutti_mcp.engine.executors.sampling import SamplingExecutor, SamplingReply, SamplingRequest
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, Step
from tutti_mcp.engine.step_prompts import system_prompt
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.memory.runs.records import RunRecord
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.settings import Settings, build_engine

pytestmark = pytest.mark.anyio

MODEL = "claude-haiku-4-5"  # $1 / $5 per MTok; `instant` disables thinking
PREAMBLE = system_prompt(Step(id="plain"))
PROMPT = "Update the release notes."
EMPTY_LISTING = (
    "Here're the files and directories up to 2 levels deep in /memories, excluding hidden "
    "items:\n0B\t/memories"
)


def spec(name: str = "release-notes", **step: Any) -> dict[str, Any]:
    fields = {"id": "notes", "prompt": PROMPT, "model": MODEL, "thinking": "instant"}
    return {"name": name, "steps": [{**fields, "memory": True, **step}]}


def view(path: str = "/memories") -> dict[str, Any]:
    return {"command": "view", "path": path}


def create(path: str, file_text: str) -> dict[str, Any]:
    return {"command": "create", "path": path, "file_text": file_text}


def str_replace(path: str, old_str: str, new_str: str) -> dict[str, Any]:
    return {"command": "str_replace", "path": path, "old_str": old_str, "new_str": new_str}


def result(tool_use_id: str, content: str, *, is_error: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    return {**block, "is_error": True} if is_error else block


def results_sent(fake: FakeAnthropic) -> list[list[dict[str, Any]]]:
    """The tool_result blocks sent back, one list per request that answers a tool-use turn."""
    lasts = [body["messages"][-1]["content"] for body in fake.bodies]
    return [content for content in lasts if isinstance(content, list)]


@pytest.fixture
async def store() -> AsyncIterator[SqliteRunStore]:
    async with await SqliteRunStore.open(":memory:") as s:
        yield s


@pytest.fixture
def mem(store: SqliteRunStore) -> AsyncMemoryFiles:
    return AsyncMemoryFiles.of(store)


async def run(
    fake: FakeAnthropic,
    store: SqliteRunStore,
    workflow: dict[str, Any],
    *,
    memory: AsyncMemoryFiles | None,
    workspace: Path,
    max_turns: int = MAX_TURNS,
) -> RunRecord:
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=fake.base_url, max_retries=0
    ) as client:
        executor = PromptExecutor(client, memory=memory, max_turns=max_turns)
        engine = Engine(
            store,
            {ExecutorKind.PROMPT: executor},
            EngineConfig(rand=lambda: 0.0, workspace=workspace),
        )
        with anyio.fail_after(8):
            return await engine.run(workflow)


# -- the tool-use loop -----------------------------------------------------------------------
async def test_a_memory_step_views_creates_and_edits_a_file_then_answers(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    fake_anthropic.script(
        turn(tool_use("t1", view()), input_tokens=100, output_tokens=10),
        turn(
            tool_use("t2", create("/memories/notes.md", "v1: shipped\n")),
            input_tokens=200,
            output_tokens=20,
            cache_read_input_tokens=50,
        ),
        turn(
            tool_use("t3", str_replace("/memories/notes.md", "shipped", "shipped on time")),
            input_tokens=300,
            output_tokens=30,
        ),
        message("Notes updated.", input_tokens=400, output_tokens=40),
    )

    record = await run(fake_anthropic, store, spec(), memory=mem, workspace=tmp_path)

    step = record.steps["notes"]
    assert (record.status.value, step.output) == ("succeeded", "Notes updated.")
    scope = "workflow:release-notes"
    author = f"run:{record.id}/step:notes"
    assert await mem.run(MemoryFiles.scopes) == {scope: 1}
    assert await mem.run(MemoryFiles.read, "/memories/notes.md", scope=scope) == (
        "v1: shipped on time\n"
    )
    history = await mem.run(MemoryFiles.history, "/memories/notes.md", scope=scope)
    assert [(r.op, r.author, r.scope) for r in history] == [
        ("str_replace", author, scope),
        ("create", author, scope),
    ]

    first = fake_anthropic.requests[0]
    assert "anthropic-beta" not in first.headers  # the GA Messages API takes the tool
    assert first.body == {
        "model": MODEL,
        "system": f"{PREAMBLE}\n\n{SYSTEM_LINE}",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 4096,
        "thinking": {"type": "disabled"},
        "metadata": {"user_id": f"tutti:{record.id}"},
        "tools": [{"type": "memory_20250818", "name": "memory"}],
    }
    assert [b["tools"] for b in fake_anthropic.bodies] == [[MEMORY_TOOL]] * 4
    assert fake_anthropic.bodies[3]["messages"] == [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": [tool_use("t1", view())]},
        {"role": "user", "content": [result("t1", EMPTY_LISTING)]},
        {
            "role": "assistant",
            "content": [tool_use("t2", create("/memories/notes.md", "v1: shipped\n"))],
        },
        {
            "role": "user",
            "content": [result("t2", "File created successfully at: /memories/notes.md")],
        },
        {
            "role": "assistant",
            "content": [
                tool_use("t3", str_replace("/memories/notes.md", "shipped", "shipped on time"))
            ],
        },
        {
            "role": "user",
            "content": [
                result(
                    "t3",
                    "The memory file has been edited. Here is the snippet showing the change "
                    "(with line numbers):\n     1\tv1: shipped on time\n     2\t",
                )
            ],
        },
    ]

    cost = ((100 + 200 + 300 + 400) * 1 + 50 * 0.1 + (10 + 20 + 30 + 40) * 5) / 1e6
    usage = dict(step.usage or {})
    calls = usage.pop("tool_calls")
    assert [(c["turn"], c["tool"], c["input"], c["is_error"]) for c in calls] == [
        (1, "memory", '{"command": "view", "path": "/memories"}', False),
        (
            2,
            "memory",
            '{"command": "create", "path": "/memories/notes.md", "file_text": "v1: shipped\\n"}',
            False,
        ),
        (
            3,
            "memory",
            '{"command": "str_replace", "path": "/memories/notes.md", "old_str": '
            '"shipped", "new_str": "shipped on time"}',
            False,
        ),
    ]
    assert usage == pytest.approx(
        {
            "input_tokens": 1000,
            "output_tokens": 100,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 50,
            "thinking_tokens": 0,
            "model": MODEL,
            "stop_reason": "end_turn",
            "turns": 4,
            "cost_usd": cost,
        }
    )
    assert record.metrics is not None
    assert record.metrics["cost_usd"] == pytest.approx(cost)


async def test_failed_commands_and_unknown_tools_get_error_results_and_the_loop_goes_on(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    fake_anthropic.script(
        turn(tool_use("t1", create("/memories/tasks.md", "ship it"))),
        turn(
            tool_use("t2", str_replace("/memories/tasks.md", "absent text", "x")),
            tool_use("t3", {"command": "ls"}, name="bash"),
            tool_use("t4", view("/memories/../etc/passwd")),
        ),
        turn(tool_use("t5", str_replace("/memories/tasks.md", "ship it", "shipped"))),
        message("Done, after one mistake."),
    )

    record = await run(fake_anthropic, store, spec(), memory=mem, workspace=tmp_path)

    assert (record.status.value, record.steps["notes"].output) == (
        "succeeded",
        "Done, after one mistake.",
    )
    assert results_sent(fake_anthropic) == [
        [result("t1", "File created successfully at: /memories/tasks.md")],
        [
            result(
                "t2",
                "No replacement was performed, old_str `absent text` did not appear verbatim "
                "in /memories/tasks.md.",
                is_error=True,
            ),
            result("t3", "unknown tool 'bash': the only tool here is `memory`", is_error=True),
            result(
                "t4",
                "Path /memories/../etc/passwd would escape /memories directory ('..' is not "
                "allowed)",
                is_error=True,
            ),
        ],
        [
            result(
                "t5",
                "The memory file has been edited. Here is the snippet showing the change "
                "(with line numbers):\n     1\tshipped",
            )
        ],
    ]
    scope = "workflow:release-notes"
    assert await mem.run(MemoryFiles.read, "/memories/tasks.md", scope=scope) == "shipped"


async def test_a_later_run_of_the_workflow_sees_its_memory_and_another_workflow_does_not(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    fake_anthropic.script(
        turn(tool_use("a1", create("/memories/style.md", "Use past tense."))),
        message("first run done"),
        turn(tool_use("b1", view())),
        turn(tool_use("b2", view("/memories/style.md"))),
        message("second run done"),
        turn(tool_use("c1", view())),
        message("other workflow done"),
    )

    first = await run(fake_anthropic, store, spec(), memory=mem, workspace=tmp_path)
    second = await run(fake_anthropic, store, spec(), memory=mem, workspace=tmp_path)
    other = await run(fake_anthropic, store, spec("changelog"), memory=mem, workspace=tmp_path)

    assert [r.status.value for r in (first, second, other)] == ["succeeded"] * 3
    assert [r.steps["notes"].output for r in (first, second, other)] == [
        "first run done",
        "second run done",
        "other workflow done",
    ]
    assert results_sent(fake_anthropic) == [
        [result("a1", "File created successfully at: /memories/style.md")],
        [
            result(
                "b1",
                "Here're the files and directories up to 2 levels deep in /memories, excluding "
                "hidden items:\n15B\t/memories\n15B\t/memories/style.md",
            )
        ],
        [
            result(
                "b2",
                "Here's the content of /memories/style.md with line numbers:\n"
                "     1\tUse past tense.",
            )
        ],
        [result("c1", EMPTY_LISTING)],
    ]
    assert await mem.run(MemoryFiles.scopes) == {"workflow:release-notes": 1}


async def test_thinking_blocks_go_back_to_the_model_unchanged(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    thought = thinking("The notes may already exist; look first.", signature="EqQBCkYIARgC")
    fake_anthropic.script(
        turn(thought, text_block("Checking memory."), tool_use("t1", view()), thinking_tokens=7),
        message("Nothing stored yet.", thinking_tokens=3),
    )

    record = await run(
        fake_anthropic, store, spec(thinking="standard"), memory=mem, workspace=tmp_path
    )

    assert record.steps["notes"].output == "Nothing stored yet."
    second = fake_anthropic.bodies[1]
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert second["messages"][1:] == [
        {
            "role": "assistant",
            "content": [thought, text_block("Checking memory."), tool_use("t1", view())],
        },
        {"role": "user", "content": [result("t1", EMPTY_LISTING)]},
    ]
    assert (record.steps["notes"].usage or {})["thinking_tokens"] == 10


async def test_a_model_that_keeps_using_tools_is_stopped_after_the_turn_bound(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    fake_anthropic.script(*[turn(tool_use(f"t{i}", view())) for i in range(5)])

    record = await run(
        fake_anthropic,
        store,
        spec(retry={"attempts": 3, "backoff_s": 0}),
        memory=mem,
        workspace=tmp_path,
        max_turns=3,
    )

    step = record.steps["notes"]
    assert (record.status.value, step.status.value, step.attempts) == ("failed", "failed", 1)
    assert step.error == (
        "claude-haiku-4-5 was still using the memory tool after 3 turns; ask for less in the "
        "prompt, or split the step"
    )
    assert len(fake_anthropic.requests) == 3


async def test_the_turn_bound_defaults_to_25_model_turns(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    fake_anthropic.script(*[turn(tool_use(f"t{i}", view())) for i in range(24)], message("ok"))

    record = await run(fake_anthropic, store, spec(), memory=mem, workspace=tmp_path)

    assert (record.status.value, (record.steps["notes"].usage or {})["turns"]) == (
        "succeeded",
        25,
    )


@pytest.mark.parametrize(
    ("memory", "scope"),
    [
        ("workflow", "workflow:release-notes"),
        ("global", "global"),
        ("project", "project:{workspace}"),
        ("project:acme/site", "project:acme/site"),
        ("workflow:shared-notes", "workflow:shared-notes"),
    ],
)
async def test_the_memory_field_picks_the_scope_the_files_land_in(
    fake_anthropic: FakeAnthropic,
    store: SqliteRunStore,
    mem: AsyncMemoryFiles,
    tmp_path: Path,
    memory: str,
    scope: str,
) -> None:
    fake_anthropic.script(turn(tool_use("t1", create("/memories/a.md", "x"))), message("ok"))

    await run(fake_anthropic, store, spec(memory=memory), memory=mem, workspace=tmp_path)

    assert await mem.run(MemoryFiles.scopes) == {scope.format(workspace=tmp_path.resolve()): 1}


async def test_steps_without_memory_send_no_tools(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    fake_anthropic.script(message("plain"))

    record = await run(fake_anthropic, store, spec(memory=False), memory=mem, workspace=tmp_path)

    assert record.steps["notes"].output == "plain"
    assert "tools" not in fake_anthropic.bodies[0]
    assert fake_anthropic.bodies[0]["system"] == PREAMBLE
    assert "turns" not in (record.steps["notes"].usage or {})


# -- wiring and configuration ------------------------------------------------------------------
async def test_build_engine_gives_prompt_steps_the_memory_store(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, mem: AsyncMemoryFiles, tmp_path: Path
) -> None:
    fake_anthropic.script(turn(tool_use("t1", create("/memories/a.md", "kept"))), message("ok"))
    settings = Settings(
        db_path=tmp_path / "unused.db", api_key="test", base_url=fake_anthropic.base_url
    )
    engine = build_engine(settings, store, workspace=tmp_path, memory=mem)

    with anyio.fail_after(8):
        record = await engine.run(spec())

    assert record.status.value == "succeeded"
    assert await mem.run(MemoryFiles.read, "/memories/a.md", scope="workflow:release-notes") == (
        "kept"
    )


async def test_a_memory_step_without_a_memory_store_is_refused_before_it_runs(
    fake_anthropic: FakeAnthropic, store: SqliteRunStore, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await run(fake_anthropic, store, spec(), memory=None, workspace=tmp_path)

    assert str(caught.value) == (
        "cannot run this workflow:\n  - step 'notes': uses `memory`, but no memory store is "
        "configured here: memory files live in tutti's database, which this engine does not "
        "use (e.g. with `optimization.state_persistence: false`); remove `memory` or run with "
        "the database"
    )
    assert fake_anthropic.requests == []
    assert await store.list_runs() == []


async def _never_sampled(request: SamplingRequest) -> SamplingReply:
    raise AssertionError(f"sampled {request.step_id}")


async def test_a_memory_step_routed_to_sampling_fails_preflight(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = Engine(
        store,
        {ExecutorKind.SAMPLING: SamplingExecutor(_never_sampled)},
        EngineConfig(model_executor=ExecutorKind.SAMPLING, workspace=tmp_path),
    )

    with anyio.fail_after(5), pytest.raises(ConfigurationError) as caught:
        await engine.run(spec())

    assert str(caught.value) == (
        "cannot run this workflow:\n  - step 'notes': uses `memory`, but MCP sampling offers "
        "the model no tools: set `run: prompt` (with ANTHROPIC_API_KEY set) to give it the "
        "memory tool, or `run: client` to hand the step to the calling agent with tutti's "
        "memory tool"
    )
    assert await store.list_runs() == []


@pytest.mark.parametrize(
    ("memory", "scope"),
    [(True, "workflow:release-notes"), ("global", "global"), ("project", "project:{workspace}")],
)
async def test_a_client_memory_step_tells_the_calling_model_the_scope(
    store: SqliteRunStore, tmp_path: Path, memory: Any, scope: str
) -> None:
    scope = scope.format(workspace=tmp_path.resolve())
    engine = Engine(
        store,
        {ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(model_executor=ExecutorKind.CLIENT, workspace=tmp_path),
    )

    with anyio.fail_after(5):
        record = await engine.run(spec(memory=memory))

    step = record.steps["notes"]
    assert (record.status.value, step.status.value) == ("waiting", "waiting")
    request = step.request
    assert request["memory_scope"] == scope
    assert request["instructions"] == (
        f'{PROMPT}\n\nMemory: this step has memory in scope "{scope}". Use tutti\'s `memory` '
        f'tool with scope: "{scope}": view /memories first, and record there what would help '
        "the next time."
    )


async def test_a_client_step_without_memory_has_no_memory_instructions(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    engine = Engine(
        store,
        {ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(model_executor=ExecutorKind.CLIENT, workspace=tmp_path),
    )

    with anyio.fail_after(5):
        record = await engine.run(spec(memory=None))

    request = record.steps["notes"].request
    assert (request["instructions"], "memory_scope" in request) == (PROMPT, False)
