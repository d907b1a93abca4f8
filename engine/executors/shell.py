"""Shell steps, without a shell: the program and its arguments are an argv list, each
template rendered separately, so a value can never become shell syntax. Values can also
reach the program as environment variables (`env:`). The working directory stays inside
the workspace, output is capped, and a timeout or cancellation kills the whole process
group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Collection
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

from engine.errors import StepError
from engine.executors.base import StepCall, StepOutcome
from engine.spec import Step

DEFAULT_MAX_OUTPUT = 1_000_000
_KILL_GRACE_S = 2.0


class ShellExecutor:
    """`allow` names the programs that may run (bare names looked up on PATH, or exact
    paths); None allows every program (the CLI running a file its user gave it)."""

    def __init__(
        self, allow: Collection[str] | None = None, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> None:
        self.allow = None if allow is None or "*" in allow else frozenset(allow)
        self.max_output = max_output

    def check_program(self, program: str) -> str | None:
        """Why `program` may not run here, or None."""
        if self.allow is None or program in self.allow:
            return None
        allowed = ", ".join(sorted(self.allow)) or "nothing"
        return (
            f"program {program!r} is not allowed (TUTTI_ALLOW_SHELL allows: {allowed}); "
            "add it to TUTTI_ALLOW_SHELL to run it"
        )

    def check_step(self, step: Step) -> str | None:
        argv = step.shell_argv
        if not argv or "${" in argv[0]:
            return None  # a templated program is checked when it is rendered
        return self.check_program(argv[0])

    async def execute(self, call: StepCall) -> StepOutcome:
        step = call.step
        argv = [call.render(a) for a in step.shell_argv]
        if not argv or not argv[0]:
            raise StepError("the command is empty after rendering", retryable=False, kind="policy")
        why = self.check_program(argv[0])
        if why:
            raise StepError(why, retryable=False, kind="policy")
        cwd = _confined(call.workspace, call.render(step.cwd) if step.cwd else None)
        env = {
            **os.environ,
            **{k: call.render(v) for k, v in step.env.items()},
            "TUTTI_RUN_ID": call.run_id,
            "TUTTI_STEP_ID": step.id,
            "TUTTI_ATTEMPT": str(call.attempt),
            "TUTTI_IDEMPOTENCY_KEY": call.idempotency_key,
        }
        try:
            process = await anyio.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group, so a kill reaches children
            )
        except FileNotFoundError:
            raise StepError(
                f"program {argv[0]!r} not found on PATH", retryable=False, kind="not_found"
            ) from None
        except PermissionError:
            raise StepError(
                f"program {argv[0]!r} is not executable", retryable=False, kind="not_found"
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
                kind="exit_code",
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
                        kind="output_cap",
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
            f"cwd {cwd!r} is outside the workspace {root}", retryable=False, kind="policy"
        )
    if not target.is_dir():
        raise StepError(
            f"cwd {cwd!r} is not a directory in the workspace", retryable=False, kind="policy"
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
