"""Determinism of the generic workflow: a run's event history, replayed by Temporal's
Replayer, makes the same decisions, in this process and in a process with another hash
seed (a set's order differs there; `tutti worker` pins PYTHONHASHSEED=0, but the runner
must not depend on it where it decides what to schedule)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from tests.temporal.devserver import DevServer
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.temporal.codec import from_wire, to_wire
from tutti_mcp.engine.temporal.worker import new_worker
from tutti_mcp.engine.temporal.workflow import RUN_WORKFLOW, TuttiRunWorkflow

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

# fan-out, a foreach, conditions both ways, a loop, a failure handled by a fallback
BUSY: dict[str, Any] = {
    "name": "busy",
    "steps": [
        {"id": "items", "value": ["a", "b", "c", "d", "e"]},
        {"id": "each", "foreach": "${items.output}", "args": "<${item}>"},
        {"id": "w1", "op": "wait", "value": 0.01, "depends_on": ["items"]},
        {"id": "w2", "op": "wait", "value": 0.02, "depends_on": ["items"]},
        {"id": "w3", "op": "wait", "value": 0.01, "depends_on": ["items"]},
        {"id": "yes", "when": "${items.output | length > 3}", "args": "many"},
        {"id": "no", "when": "${items.output | length > 30}", "args": "lots"},
        {
            "id": "refine",
            "loop": {
                "max_iterations": 3,
                "until": "${grow.output | length >= 3}",
                "steps": [
                    {"id": "grow", "value": "${(loop.last.grow if loop.last else '') ~ 'x'}"}
                ],
            },
        },
        {
            "id": "bad",
            "op": "parse_json",
            "args": "{no",
            "on_failure": "fallback",
            "fallback": "good",
        },
        {"id": "good", "op": "json", "value": {"ok": True}},
        {
            "id": "join",
            "depends_on": ["each", "w1", "w2", "w3", "yes", "no", "refine", "bad"],
            "trigger": "all_done",
            "args": "${each.output | length} ${refine.output}",
        },
    ],
}


async def test_a_runs_history_replays_the_same_here_and_under_another_hash_seed(
    devserver: DevServer, tmp_path: Path
) -> None:
    queue = f"replay-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(devserver.address)
    worker = new_worker(
        client,
        queue,
        {ExecutorKind.BUILTIN: BuiltinExecutor()},
        ModelTable(),
        workspace=None,
        max_concurrency=16,
        heartbeat_s=5,
    )
    run_id = f"run_replay_{uuid.uuid4().hex[:8]}"
    with anyio.fail_after(60):
        async with worker:
            record = await client.execute_workflow(
                RUN_WORKFLOW,
                to_wire({"run_id": run_id, "spec": BUSY, "inputs": {}, "workspace": str(tmp_path)}),
                id=run_id,
                task_queue=queue,
            )
        history = await client.get_workflow_handle(run_id).fetch_history()
    record = from_wire(record) if isinstance(record, str) else record
    assert record["status"] == "succeeded", record
    assert record["steps"]["no"]["status"] == "skipped"

    with anyio.fail_after(60):
        await Replayer(workflows=[TuttiRunWorkflow]).replay_workflow(history)

    path = tmp_path / "history.json"
    path.write_text(history.to_json())
    script = (
        "import asyncio, sys\n"
        "from temporalio.client import WorkflowHistory\n"
        "from temporalio.worker import Replayer\n"
        "from tutti_mcp.engine.temporal.workflow import TuttiRunWorkflow\n"
        "h = WorkflowHistory.from_json(sys.argv[1], open(sys.argv[2]).read())\n"
        "asyncio.run(Replayer(workflows=[TuttiRunWorkflow]).replay_workflow(h))\n"
        "print('replayed')\n"
    )
    for seed in ("12345",):
        done = subprocess.run(
            [sys.executable, "-c", script, run_id, str(path)],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and "replayed" in done.stdout, done.stderr[-3000:]
