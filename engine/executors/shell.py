"""Shell steps, without a shell: the program and its arguments are an argv list, each
template rendered separately, so a value can never become shell syntax. Values can also
reach the program as environment variables (`env:`). The program is resolved with the
server's own PATH before the step's env applies, and the env may not set what changes
which program runs or what it loads (engine.executors.shell_policy). The working
directory stays inside the workspace, output is capped, and a timeout or cancellation
kills the whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Collection
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

from tutti_mcp.engine.errors import StepError, StepErrorKind
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.shell_policy import ShellPolicy
from tutti_mcp.engine.spec import Step

DEFAULT_MAX_OUTPUT = 1_000_000
_KILL_GRACE_S = 2.0


class ShellExecutor:
    """`allow` names the programs that may run (bare names looked up on the server's PATH,
    or exact absolute paths); None allows every program (the CLI running a file its user
    gave it). What may run, and with which environment, is `policy` (a ShellPolicy)."""

    def __init__(
        self, allow: Collection[str] | None = None, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> None:
        self.policy = ShellPolicy(allow)
        self.max_output = max_output

    def check_step(self, step: Step) -> str | None:
        """What the policy refuses in a step as written: its program (unless templated,
        then it is checked once rendered) and the names in its env."""
        problems = []
        argv = step.shell_argv
        if argv and "${" not in argv[0]:
            problems.append(self.policy.program_problem(argv[0]))
        problems.append(self.policy.env_problem(step.env))
        return "; ".join(p for p in problems if p) or None

    async def execute(self, call: StepCall) -> StepOutcome:
        step = call.step
        argv = [call.render(a) for a in step.shell_argv]
        if not argv or not argv[0]:
            raise StepError(
                "the command is empty after rendering", retryable=False, kind=StepErrorKind.POLICY
            )
        why = self.policy.program_problem(argv[0]) or self.policy.env_problem(step.env)
        if why:
            raise StepError(why, retryable=False, kind=StepErrorKind.POLICY)
        cwd = _confined(call.workspace, call.render(step.cwd) if step.cwd else None)
        # resolved with the server's PATH before anything from the spec's env applies
        program = self.policy.resolve(argv[0], cwd)
        env = self.policy.child_env(
            {k: call.render(v) for k, v in step.env.items()},
            {
                "TUTTI_RUN_ID": call.run_id,
                "TUTTI_STEP_ID": step.id,
                "TUTTI_ATTEMPT": str(call.attempt),
                "TUTTI_IDEMPOTENCY_KEY": call.idempotency_key,
            },
        )
        try:
            process = await anyio.open_process(
                [program, *argv[1:]],
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group, so a kill reaches children
            )
        except FileNotFoundError:  # removed since it was resolved, or a #! names no interpreter
            raise StepError(
                f"program {argv[0]!r} ({program}) could not be started: it or the interpreter "
                "its #! line names is not there",
                retryable=False,
                kind=StepErrorKind.NOT_FOUND,
            ) from None
        except PermissionError:
            raise StepError(
                f"program {argv[0]!r} is not executable",
                retryable=False,
                kind=StepErrorKind.NOT_FOUND,
            ) from None
        try:
            out, err = await self._communicate(process)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _kill_group(process)
            raise
        code = process.returncode
        if code != 0:
            tail = err.decode(errors="replace").strip()[-2000:]
            raise StepError(
                f"{argv[0]} exited with code {code}" + (f": {tail}" if tail else ""),
                kind=StepErrorKind.EXIT_CODE,
            )
        return StepOutcome(out.decode(errors="replace").rstrip("\n"))

    async def _communicate(self, process: Process) -> tuple[bytes, bytes]:
        out = bytearray()
        err = bytearray()

        async def pump(stream: ByteReceiveStream | None, buf: bytearray, name: str) -> None:
            if stream is None:
                return
            async for chunk in stream:
                buf += chunk
                if len(buf) > self.max_output:
                    raise StepError(
                        f"{name} exceeded the cap of {self.max_output} bytes; make the command print "
                        "less or raise TUTTI_SHELL_MAX_OUTPUT",
                        retryable=False,
                        kind=StepErrorKind.OUTPUT_CAP,
                    )

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, process.stdout, out, "stdout")
                tg.start_soon(pump, process.stderr, err, "stderr")
        except* StepError as group:
            raise group.exceptions[0] from None
        await process.wait()
        return bytes(out), bytes(err)


def _confined(workspace: Path, cwd: str | None) -> Path:
    root = workspace.resolve()
    target = (root / cwd).resolve() if cwd else root
    if not target.is_relative_to(root):
        raise StepError(
            f"cwd {cwd!r} is outside the workspace {root}",
            retryable=False,
            kind=StepErrorKind.POLICY,
        )
    if not target.is_dir():
        raise StepError(
            f"cwd {cwd!r} is not a directory in the workspace",
            retryable=False,
            kind=StepErrorKind.POLICY,
        )
    return target


async def _kill_group(process: Process) -> None:
    """SIGTERM the step's process group, SIGKILL it after a grace period (and in any case
    once the leader is gone, so no child outlives the step)."""
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = None
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    with anyio.move_on_after(_KILL_GRACE_S):
        await process.wait()
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    await process.aclose()
