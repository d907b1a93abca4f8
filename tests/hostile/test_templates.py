"""Hostile templates (issue 9, item 2): each fails fast with a TemplateError that names the
limit it hit, instead of hanging the process or eating its memory; a run with one fails
that step while the MCP server keeps answering.

The attacks run in a worker process under a 1 GiB memory limit with a timeout per attack,
so that a regression fails its test (MemoryError, or a kill after the timeout) rather
than hanging the suite or the machine.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.test_durability import cli_env
from tutti_mcp.engine.errors import TemplateError

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1 << 30
TIMEOUT_S = 10.0  # an attack fails in well under a second; this only catches hangs


class Worker:
    """A template-rendering process (tests/hostile/template_worker.py), restarted after a
    hang or a crash."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.hostile.template_worker", str(MEMORY_LIMIT)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        return self.proc

    def ask(self, text: str, context: dict[str, Any], kind: str = "render") -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"kind": kind, "text": text, "context": context}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            pytest.fail(f"{text!r} did not finish within {TIMEOUT_S:g} s (or killed the worker)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.communicate(timeout=TIMEOUT_S)
            self.proc = None


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.stop()


CTX: dict[str, Any] = {"inputs": {"items": list(range(1000)), "s": "x" * 100_000}}
INT_CAP = "templates are limited to 14,000-bit integers"
TEXT_CAP = "templates are limited to 4,000,000 characters"
ITEMS_CAP = "templates are limited to 1,000,000 items"
RANGE_CAP = "templates are limited to 100,000 items"
TOO_MUCH_WORK = "the template does too much work: more than"

# (template, what its error must say); the first six are the issue's own.
ATTACKS = {
    "exponent tower": (
        "${ 9**(9**9) > 1 }",
        "`9 ** 387420489` would have about 1,228,093,895 bits",
    ),
    "str times a float": ("${ 'x' * 6e9 }", "a string can only be repeated a whole number"),
    "str times a big int": ("${ 'x' * 6000000000 }", TEXT_CAP),
    "range of a float": ("${ range(4e8) | list }", "range() takes whole numbers"),
    "range of a big int": ("${ range(400000000) | list }", RANGE_CAP),
    "list times a big int": ("${ [1] * 6000000000 }", ITEMS_CAP),
    "nested loops": (
        "${% for i in range(100000) %}${% for j in range(100000) %}${% endfor %}${% endfor %}",
        f"{TOO_MUCH_WORK} 1,000,000 operations",
    ),
    "nested loops comparing": (
        "${% for i in range(100000) %}${% for j in range(100000) %}"
        "${% if i > j %}${% endif %}${% endfor %}${% endfor %}",
        f"{TOO_MUCH_WORK} 1,000,000 operations",
    ),
    "nested loops over data": (
        "${% for i in range(100000) %}${% for j in inputs['items'] %}"
        "${% for k in inputs['items'] %}${% endfor %}${% endfor %}${% endfor %}",
        f"{TOO_MUCH_WORK} 1,000,000 operations",
    ),
    "doubling a string with ~": (
        "${% set ns = namespace(s='x') %}${% for i in range(40) %}"
        "${% set ns.s = ns.s ~ ns.s %}${% endfor %}",
        TEXT_CAP,
    ),
    "doubling a list with +": (
        "${% set ns = namespace(s=[1]) %}${% for i in range(40) %}"
        "${% set ns.s = ns.s + ns.s %}${% endfor %}",
        ITEMS_CAP,
    ),
    "squaring an int": (
        "${% set ns = namespace(n=3) %}${% for i in range(100) %}"
        "${% set ns.n = ns.n * ns.n %}${% endfor %}",
        INT_CAP,
    ),
    "percent width": ("${ '%0999999999d' % 1 }", TEXT_CAP),
    "format filter width": ("${ '%9999999999s' | format(1) }", TEXT_CAP),
    "star width": ("${ '%*d' % (999999999, 1) }", "`*` widths are not allowed"),
    "str.format width": ("${ '{:>999999999}'.format(1) }", TEXT_CAP),
    "center filter": ("${ 'x' | center(999999999) }", TEXT_CAP),
    "str.ljust": ("${ 'x'.ljust(999999999) }", TEXT_CAP),
    "indent filter": ("${ 'x' | indent(999999999, true) }", TEXT_CAP),
    "batch fill": ("${ range(10) | batch(999999999, 'x') | list }", ITEMS_CAP),
    "slice count": ("${ range(10) | slice(999999999) | list }", ITEMS_CAP),
    "int.to_bytes": ("${ (1).to_bytes(1000000000, 'big') }", "`int.to_bytes` is not available"),
    "replace an empty string": ("${ ('x' * 1000000).replace('', 'y' * 1000) }", TEXT_CAP),
    "expandtabs": ("${ ('\\t' * 1000000).expandtabs(1000) }", TEXT_CAP),
    "comparing shared lists": (
        "${% set a = [range(100000) | list] * 100000 %}"
        "${% set c = [range(100000) | list] * 100000 %}${ a == c }",
        f"{TOO_MUCH_WORK} 1,000,000 operations",
    ),
    "writing out a shared list": (
        "${% set b = 'x' * 4000000 %}${ [b] * 1000000 }",
        f"{TOO_MUCH_WORK} 1,000,000 operations",
    ),
    "joining a shared list": (
        "${% set b = 'x' * 4000000 %}${ ([b] * 1000000) | join | length }",
        f"{TOO_MUCH_WORK} 1,000,000 operations",
    ),
    "macro call tree": (
        "${% macro f(n) %}${% if n > 0 %}${ f(n-1) }${ f(n-1) }${% endif %}${% endmacro %}"
        "${ f(40) }",
        TOO_MUCH_WORK,
    ),
    "sum of lists": ("${ [[1] * 1000] * 1000 | sum(start=[]) }", "`sum` adds numbers"),
    "output cap": (
        "${% for i in range(100) %}${ inputs.s }${% endfor %}",
        f"the rendered text would be 10,000,000 characters; {TEXT_CAP}",
    ),
    "mutating the context": (
        "${ inputs['items'].append(1) }",
        "access to attribute 'append' of 'list' object is unsafe",
    ),
    "recursive loop": (
        "${% for x in [1] recursive %}${ loop(range(100000)) }${% endfor %}",
        f"{TOO_MUCH_WORK} 1,000,000 operations",
    ),
}


@pytest.mark.parametrize(("template", "message"), ATTACKS.values(), ids=ATTACKS.keys())
def test_a_hostile_template_fails_fast_naming_the_limit_it_hit(
    worker: Worker, template: str, message: str
) -> None:
    answer = worker.ask(template, CTX)
    assert "error" in answer, answer
    assert answer["error"].startswith(repr(template) + ": ")
    assert message in answer["error"]


def test_a_hostile_condition_fails_fast_naming_the_limit_it_hit(worker: Worker) -> None:
    answer = worker.ask("9**(9**9) > 1", CTX, kind="evaluate")
    assert "error" in answer, answer
    assert INT_CAP in answer["error"]


def test_a_lone_expression_cannot_return_a_value_too_big_to_store(worker: Worker) -> None:
    # `${expr}` keeps its native value, which becomes the step's output (stored as JSON)
    answer = worker.ask("${ ['x' * 4000000] * 1000 }", CTX, kind="evaluate")
    assert "error" in answer, answer
    assert TEXT_CAP in answer["error"]


LEGAL = {
    "the largest string": ("${ ('x' * 4000000) | length }", "4000000"),
    "the largest range": ("${ range(100000) | list | length }", "100000"),
    "a big int": ("${ (2 ** 13000) > 1 }", "true"),
    "joining many items": ("${ range(20000) | map('string') | join(',') | length }", "108889"),
    "loops of modest size": (
        "${% for i in range(300) %}${% for j in range(300) %}${% endfor %}${% endfor %}ok",
        "ok",
    ),
}


@pytest.mark.parametrize(("template", "value"), LEGAL.values(), ids=LEGAL.keys())
def test_work_within_the_limits_still_renders(worker: Worker, template: str, value: str) -> None:
    assert worker.ask(template, CTX) == {"value": repr(value), "seconds": pytest.approx(0, abs=5)}


# -- the event loop keeps going ---------------------------------------------------------


@pytest.mark.anyio
async def test_a_render_that_is_more_than_a_little_work_runs_off_the_event_loop() -> None:
    heavy = "${% for i in range(60000) %}${% endfor %}done"
    from tutti_mcp.engine.templating import render_async

    order: list[str] = []

    async def rendering() -> None:
        order.append(await render_async(heavy, {}))

    async def other() -> None:
        order.append("other")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(rendering)  # runs first: were it inline, it would finish first
            tg.start_soon(other)
    assert order == ["other", "done"]


@pytest.mark.anyio
async def test_a_small_render_stays_on_the_event_loop() -> None:
    from tutti_mcp.engine.templating import render_async

    order: list[str] = []

    async def rendering() -> None:
        order.append(await render_async("${ 'small' }", {}))

    async def other() -> None:
        order.append("other")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(rendering)
            tg.start_soon(other)
    assert order == ["small", "other"]


def test_a_cancelled_budget_stops_the_render_at_its_next_check() -> None:
    from tutti_mcp.engine.template_limits import Budget
    from tutti_mcp.engine.templating import render

    budget = Budget()
    budget.cancel()
    with pytest.raises(TemplateError) as info:
        render("${% for i in range(100000) %}${% endfor %}", {}, budget)
    assert "rendering was stopped" in str(info.value)


# -- over MCP -----------------------------------------------------------------------------


async def _tool(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    with anyio.fail_after(TIMEOUT_S):  # a server stuck in a template never answers
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict), result.content
    return result.structured_content


HOGS = ("hog", "hog2", "hog3")


@pytest.mark.anyio
async def test_a_hostile_step_fails_while_the_server_keeps_answering(tmp_path: Path) -> None:
    # a real `tutti serve` process: a regression that blocks its event loop fails this
    # test on a timeout, and the client kills the stuck server on the way out
    spec = {
        "name": "hostile",
        "steps": [
            # three hogs, each rendering up to its limits (about a second of CPU); long
            # renders run one at a time, off the event loop
            *(
                {"id": hog, "op": "template", "args": ATTACKS["nested loops comparing"][0]}
                for hog in HOGS
            ),
            {"id": "tower", "op": "template", "args": "${ 9**(9**9) }"},
            {"id": "gated", "op": "template", "args": "never", "when": "${ 9**(9**9) > 1 }"},
        ],
    }
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tutti_mcp", "--db", str(tmp_path / "t.db"), "serve"],
        cwd=ROOT,
        env=cli_env(),
    )
    with anyio.fail_after(60):
        async with Client(server, mode="auto") as c:
            run = await _tool(c, "workflow_start", spec=spec)
            listed = await _tool(c, "workflow_list")
            assert [(r["run_id"], r["status"]) for r in listed["runs"]] == [
                (run["run_id"], "running")
            ]
            # The hogs render one after the other, each for about a second of CPU. A server
            # that rendered on its event loop could answer only between two renders, so each
            # answer would show one more hog finished than the last. Two answers in a row
            # with the same hogs finished, and one still running, show that the server
            # answered while a render went on. No clock is read: a loaded machine only makes
            # each answer slower, and the hogs too.
            seen: list[frozenset[str]] = []
            for _ in range(40):
                now = await _tool(c, "workflow_status", run_id=run["run_id"])
                running = [h for h in HOGS if now["steps"][h] == "running"]
                seen.append(frozenset(h for h in HOGS if h not in running))
                if running and len(seen) > 1 and seen[-1] == seen[-2]:
                    break
            else:
                raise AssertionError(f"no two answers during one render: {seen}")
            status = "running"
            while status == "running":  # each wait returns on any change of the run
                done = await _tool(c, "workflow_status", run_id=run["run_id"], wait_s=20)
                status = done["status"]
            assert status == "failed"
            result = await _tool(c, "workflow_result", run_id=run["run_id"])
    steps = result["steps"]
    for hog in HOGS:
        assert steps[hog]["status"] == "failed"
        # whichever limit a hog reaches first: on a loaded machine its second of CPU can
        # come before its millionth operation
        error = steps[hog]["error"]
        assert any(
            f"{TOO_MUCH_WORK} {limit}" in error for limit in ("1,000,000 operations", "1 s of CPU")
        ), error
    assert steps["tower"]["status"] == "failed"
    assert INT_CAP in steps["tower"]["error"]
    assert steps["gated"]["status"] == "skipped"
    assert result["recovery"]["failures"]["hog"]["kind"] == "TemplateError"
