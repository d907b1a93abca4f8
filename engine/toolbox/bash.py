"""The `bash` tool: the model runs one program with an argv list (never a shell string),
under the same policy as shell steps (engine.executors.shell_policy): the program must be
one the engine allows (TUTTI_ALLOW_SHELL), resolved on the server's own PATH; the model
sets no environment; cwd is the workspace; output is capped; a timeout or cancellation
kills the process group. A `bash:PROGRAM [ARGS]` grant narrows it further to argv that
starts with PROGRAM ARGS.

`tutti run` on its user's own file lets shell steps run any program, but the model is not
that user: there the bash tool may run only the programs the file names for it
(`bash:PROGRAM` grants); a plain `bash` grant adds nothing.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process
from pydantic import Field

from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.executors.shell_policy import ShellPolicy
from tutti_mcp.engine.toolbox.base import OUTPUT_CAP, ToolInput, ToolUseError, custom_tool
from tutti_mcp.engine.toolbox.base import parse_input as parse
from tutti_mcp.engine.toolbox.process import reaped
from tutti_mcp.engine.toolbox.spec import ToolSet

BASH_TIMEOUT_S = 120.0
_OFF = ShellPolicy(frozenset())


@dataclass(frozen=True)
class ShellAccess:
    """What the engine lets a model's bash tool run. `policy` None: shell is off here.
    `named_only`: only programs the step's `bash:PROGRAM` grants name (the CLI, whose
    policy allows every program for its user's own shell steps)."""

    policy: ShellPolicy | None = None
    named_only: bool = False
    timeout_s: float = BASH_TIMEOUT_S
    max_output: int = OUTPUT_CAP

    def problem(self, grants: ToolSet) -> str | None:
        """Why the bash tool of a step with these grants could run nothing here (said
        before the run starts), or None."""
        if self.policy is None:
            return (
                "grants the `bash` tool, but shell programs are off here: set "
                "TUTTI_ALLOW_SHELL to the programs a model may run (e.g. pytest,git), or "
                "remove bash from `tools`"
            )
        named = [p[0] for p in grants.bash_prefixes]
        if self.named_only and not named and not self.policy.restricted:
            return (
                "grants `bash` without naming a program: under `tutti run` a model may run only "
                "the programs its file names for it; write bash:PROGRAM (e.g. bash:pytest)"
            )
        if self.policy.allow is not None:
            refused = sorted({p for p in named if p not in self.policy.allow})
            if refused:
                allowed = ", ".join(sorted(self.policy.allow)) or "nothing"
                return (
                    f"grants bash:{', bash:'.join(refused)}, which TUTTI_ALLOW_SHELL does not "
                    f"allow (it allows: {allowed}); add it there, or remove the grant"
                )
        return None


class BashInput(ToolInput):
    argv: list[str] = Field(
        min_length=1, max_length=1000, description="the program and its arguments, one per item"
    )


@dataclass(frozen=True)
class BashTool:
    workspace: Path
    grants: ToolSet
    access: ShellAccess
    own_env: Mapping[str, str] = field(default_factory=dict)  # TUTTI_RUN_ID, ...
    name: str = "bash"

    def allowed(self) -> str:
        """What this tool may run, in words (for its description and its refusals)."""
        policy = self.access.policy
        if policy is None:
            return "nothing (shell programs are off on this server)"
        if self._plain:
            return "any program" if policy.allow is None else ", ".join(sorted(policy.allow))
        named = [" ".join(p) for p in self.grants.bash_prefixes]
        return ", ".join(f"argv starting with {n!r}" for n in named) or "nothing"

    @property
    def _plain(self) -> bool:
        """Whether a plain `bash` grant counts: not where only named programs may run."""
        named_only = self.access.named_only and not (self.access.policy or _OFF).restricted
        return self.grants.bash_unlimited and not named_only

    def definition(self) -> dict[str, object]:
        return custom_tool(
            self.name,
            "Run one program in the workspace directory, without a shell: `argv` is the "
            "program and its arguments (no pipes, redirects or variables). It gets no input; "
            f"its exit code, stdout and stderr come back (at most {self.access.max_output} "
            f"bytes each); it is killed after {self.access.timeout_s:g}s. "
            f"You may run: {self.allowed()}.",
            BashInput,
        )

    def _refusal(self, argv: list[str]) -> str | None:
        program = argv[0]
        if not program or any("\0" in a for a in argv):
            return "argv[0] must name a program, and no argument may hold a NUL byte"
        if "/" in program and not program.startswith("/"):
            return f"program {program!r}: name the program (pytest), not a relative path"
        policy = self.access.policy
        covered = self._plain or any(tuple(argv[: len(p)]) == p for p in self.grants.bash_prefixes)
        if policy is None or not covered:
            return f"{argv[0]!r} is not allowed here; you may run: {self.allowed()}"
        why = policy.program_problem(program)
        return f"{why}. You may run: {self.allowed()}" if why else None

    async def run(self, raw: object) -> str:
        argv = parse(self.name, BashInput, raw).argv
        why = self._refusal(argv)
        if why:
            raise ToolUseError(why)
        assert self.access.policy is not None  # _refusal refuses every program without one
        root = self.workspace.resolve()
        try:
            program = self.access.policy.resolve(argv[0], root)
        except StepError as exc:
            raise ToolUseError(str(exc)) from None
        env = self.access.policy.child_env({}, self.own_env)
        try:
            process = await anyio.open_process(
                [program, *argv[1:]],
                stdin=subprocess.DEVNULL,
                cwd=root,
                env=env,
                start_new_session=True,  # its own process group, so a kill reaches children
            )
        except OSError as exc:
            raise ToolUseError(f"{argv[0]!r} could not be started: {exc.strerror}") from None
        return await self._wait(process, argv[0])

    async def _wait(self, process: Process, program: str) -> str:
        out, err = bytearray(), bytearray()
        started = time.monotonic()
        async with reaped(process):
            with anyio.move_on_after(self.access.timeout_s) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, process.stdout, out)
                    tg.start_soon(self._pump, process.stderr, err)
                await process.wait()
        if scope.cancelled_caught:
            raise ToolUseError(
                f"{program} did not finish within {self.access.timeout_s:g}s and was killed "
                f"(after {time.monotonic() - started:.1f}s); run something shorter"
                + _streams(out, err, self.access.max_output)
            )
        text = f"exit code {process.returncode}" + _streams(out, err, self.access.max_output)
        if process.returncode != 0:
            raise ToolUseError(text)
        return text

    async def _pump(self, stream: ByteReceiveStream | None, buf: bytearray) -> None:
        # read to the end even past the cap: a child blocked on a full pipe never exits
        if stream is None:
            return
        async for chunk in stream:
            room = self.access.max_output + 1 - len(buf)
            if room > 0:
                buf += chunk[:room]


def _streams(out: bytearray, err: bytearray, cap: int) -> str:
    parts = []
    for name, buf in (("stdout", out), ("stderr", err)):
        if buf:
            text = bytes(buf[:cap]).decode(errors="replace")
            cut = f"\n[{name} cut at {cap} bytes]" if len(buf) > cap else ""
            parts.append(f"\n--- {name} ---\n{text}{cut}")
    return "".join(parts)
