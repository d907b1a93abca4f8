"""The run-store interface module: one "run not found" for every store and the engine, and
memory modules that import each other without a circle."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tutti_mcp.engine import errors
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.memory.runs.store import RunNotFound, RunStore

pytestmark = pytest.mark.anyio

MEMORY = Path(__file__).resolve().parents[2] / "memory"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RunStore]:
    if request.param == "memory":
        yield InMemoryRunStore()
    else:
        async with await SqliteRunStore.open(":memory:") as sqlite:
            yield sqlite


async def test_every_store_raises_the_one_run_not_found_with_the_user_facing_message(
    store: RunStore,
) -> None:
    with anyio.fail_after(5):
        with pytest.raises(RunNotFound) as loaded:
            await store.load_run("run_nope")
        with pytest.raises(RunNotFound) as claimed:
            await store.claim_run("run_nope", "me")
    message = "no run with id 'run_nope'; `tutti runs` lists the known runs"
    for raised in (loaded, claimed):
        assert type(raised.value) is RunNotFound
        assert (raised.value.run_id, str(raised.value)) == ("run_nope", message)


def test_the_engine_has_no_second_run_not_found_error() -> None:
    assert not hasattr(errors, "RunNotFoundError")
    assert issubclass(RunNotFound, errors.TuttiError)


def test_memory_modules_import_each_other_without_a_circle() -> None:
    deps: dict[str, set[str]] = {}
    for path in MEMORY.glob("*.py"):
        found = deps.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "tutti_mcp.memory":
                    found |= {alias.name for alias in node.names}
                elif node.module.startswith("tutti_mcp.memory."):
                    found.add(node.module.rsplit(".", 1)[1])

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for dep in deps.get(todo.pop(), set()) - seen:
                seen.add(dep)
                todo.append(dep)
        return seen

    assert [module for module in sorted(deps) if module in reachable(module)] == []
