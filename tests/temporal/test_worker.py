"""A worker process imports, before it polls, what a run's first workflow activation needs:
an activation that does not yield within 2 s is failed by Temporal as a deadlock, and
imports in the workflow's thread on a loaded machine took that long (seen in the kill
tests: the query of a run failed with TMPRL1101)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a fresh interpreter: what running a small run the workflow's way (templates rendered
# inline, on the event loop) imports after the worker module and `preload`.
_PROBE = textwrap.dedent(
    """
    import asyncio, sys
    from tutti_mcp.engine.temporal import worker
    {preload}
    from tutti_mcp.engine.executors.builtin import BuiltinExecutor
    from tutti_mcp.engine.service import Engine
    from tutti_mcp.engine.spec import ExecutorKind
    from tutti_mcp.engine.templating import RENDER_INLINE
    from tutti_mcp.memory.runs.mem_store import InMemoryRunStore

    SPEC = {{
        "inputs": {{"who": "ada"}},
        "steps": [
            {{"id": "up", "args": "${{inputs.who | upper}}"}},
            {{"id": "say", "when": "${{up.output | length > 1}}", "args": "hi ${{up.output}}"}},
        ],
    }}

    async def main():
        RENDER_INLINE.set(True)
        engine = Engine(InMemoryRunStore(), {{ExecutorKind.BUILTIN: BuiltinExecutor()}})
        before = set(sys.modules)
        run = await engine.run(SPEC)
        assert run.status.value == "succeeded", run
        new = set(sys.modules) - before
        print(sorted(m for m in new if m.split(".")[0] in ("anyio", "jinja2", "tutti_mcp")))

    asyncio.run(main())
    """
)


def imported_by_a_first_run(preload: bool) -> str:
    code = _PROBE.format(preload="worker.preload()" if preload else "")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_a_preloaded_worker_imports_nothing_of_anyio_jinja2_or_tutti_during_a_run() -> None:
    assert imported_by_a_first_run(preload=True) == "[]"
