"""`tutti approve RUN STEP --yes|--no [--note TEXT]`: answer an approval gate from a
terminal. The answer is recorded durably first (by "cli", with the OS user name); then the
run is resumed here as `tutti resume` does, unless a live process executes it (that
process takes the answer up from the database)."""

from __future__ import annotations

import argparse
import getpass

import anyio

from tutti_mcp.engine.gates import decision, record_answer, waiting_gate
from tutti_mcp.engine.service import Engine
from tutti_mcp.memory.runs.owner import owner_alive
from tutti_mcp.memory.runs.records import RunStatus
from tutti_mcp.server.cli_runs import finish_run, with_engine
from tutti_mcp.server.console import err
from tutti_mcp.server.exit_codes import EXIT_OK
from tutti_mcp.server.settings import Settings


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return "unknown"


def cmd_approve(args: argparse.Namespace) -> int:
    if Settings.from_env(db=args.db).backend == "temporal":
        from tutti_mcp.server import cli_temporal

        answer = {"approve": bool(args.approve), "note": args.note or f"by {_user()} (cli)"}
        return cli_temporal.complete(args, answer, done="approved" if args.approve else "rejected")

    async def go(engine: Engine) -> int:
        run = await engine.load(args.run_id)
        wf = engine.compile(run.spec)
        rec = waiting_gate(run, wf.steps.get(args.step_id), args.step_id)
        user = _user()
        answer = decision(args.approve, args.note, "cli", user=user)
        await record_answer(engine.store, run.id, rec, answer)
        said = "approved" if args.approve else "rejected"
        err.print(f"gate {args.step_id} of run {run.id} {said} by {user}", markup=False)
        if run.status is RunStatus.RUNNING and owner_alive(run.owner):
            err.print(f"run {run.id} is executing in {run.owner}, which takes the answer up")
            return EXIT_OK
        return await finish_run(args, engine, run.id, resume=True)

    return anyio.run(with_engine, args, go, {"shell_allow_all": True})
