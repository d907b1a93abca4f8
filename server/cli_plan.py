"""`tutti plan FILE`: validate a workflow and show its plan, with estimates from the
workflow's recorded history. Imports neither the MCP SDK nor (without an API key) the
Anthropic SDK."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from tutti_mcp.engine.plan import estimate_source, make_plan
from tutti_mcp.engine.spec import load_spec_file
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.history import WorkflowHistory, summarize
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.cli_output import print_plan
from tutti_mcp.server.console import out
from tutti_mcp.server.exit_codes import EXIT_OK
from tutti_mcp.server.models_cli import plan_table
from tutti_mcp.server.settings import Settings


async def _history(db: Path, name: str) -> WorkflowHistory:
    """The workflow's recorded history; none when there is no database yet (planning
    creates none)."""
    if str(db) != ":memory:" and not db.exists():
        return summarize(name, [])
    async with await SqliteRunStore.open(db) as store:
        return await store.workflow_history(name)


def cmd_plan(args: argparse.Namespace) -> int:
    settings = Settings.from_env(db=args.db)
    spec = load_spec_file(args.file, settings.spec_limits)  # TUTTI_MAX_SPEC_BYTES / _DEPTH
    history = anyio.run(_history, settings.db_path, spec.name)
    plan = make_plan(compile_workflow(spec), plan_table(settings, spec), history.durations())
    source = {sid: estimate_source(s, history) for sid, s in plan.steps.items()}
    summary = history.summary()
    if args.json:
        data = plan.to_dict()
        for sid, step in data["steps"].items():
            step["estimate_from"] = source[sid]
        out.print_json(data={**data, "history": summary})
        return EXIT_OK
    print_plan(plan, source, summary)
    return EXIT_OK
