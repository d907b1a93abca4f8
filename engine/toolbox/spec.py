"""A step's (or agent's) `tools:` field: the forms it takes and their parsed form.

Forms: `read`, `grep`, `glob`, `bash`, `memory`; `bash:PROGRAM [ARGS]` (the bash tool
limited to one program, and to argv starting with ARGS); the seed's `/read`, `/grep`,
`/glob`, `/bash` and `/bash PROGRAM [ARGS]`. The field keeps the entries as written; the
parsed form is `toolset(entries)`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from tutti_mcp.engine.spec_parts import MODEL_KINDS, ExecutorKind


class ToolName(StrEnum):
    READ = "read"
    GREP = "grep"
    GLOB = "glob"
    BASH = "bash"
    MEMORY = "memory"


NAMES = frozenset(n.value for n in ToolName)
SEED_FORMS = {"/read": ToolName.READ, "/grep": ToolName.GREP, "/glob": ToolName.GLOB}
KNOWN_FORMS = (
    "read, grep, glob, bash, memory, bash:PROGRAM (e.g. bash:pytest), and the seed's /read, "
    "/grep, /glob, /bash, /bash PROGRAM [ARGS] (e.g. /bash npm audit)"
)
TOOLS_HELP = "the model's toolbox: read, grep, glob, bash, bash:PROGRAM, memory"


@dataclass(frozen=True)
class ToolGrant:
    """One entry: a tool, and for a limited bash tool its program and fixed leading args."""

    name: ToolName
    program: str | None = None
    args: tuple[str, ...] = ()

    @property
    def prefix(self) -> tuple[str, ...]:
        """The argv a limited bash grant allows to start with (empty: any program)."""
        return (self.program, *self.args) if self.program is not None else ()

    def __str__(self) -> str:
        if self.program is None:
            return self.name.value
        return f"bash:{shlex.join(self.prefix)}"


@dataclass(frozen=True)
class ToolSet:
    """The parsed `tools:` of a step: its grants, in the order written, without repeats."""

    grants: tuple[ToolGrant, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.grants)

    @property
    def names(self) -> tuple[ToolName, ...]:
        """The tools granted, in the order first written, each once."""
        return tuple(dict.fromkeys(g.name for g in self.grants))

    def has(self, name: ToolName) -> bool:
        return name in self.names

    @property
    def bash_unlimited(self) -> bool:
        """A plain `bash` grant: every program the engine allows."""
        return any(g.name is ToolName.BASH and g.program is None for g in self.grants)

    @property
    def bash_prefixes(self) -> tuple[tuple[str, ...], ...]:
        """The argv prefixes the limited bash grants allow (`("npm", "audit")`)."""
        return tuple(g.prefix for g in self.grants if g.program is not None)


def parse_grant(entry: object) -> ToolGrant:
    """One `tools:` entry in its parsed form; ValueError naming the entry and the forms."""
    if not isinstance(entry, str):
        raise ValueError(f"a `tools` entry is text, got {type(entry).__name__}: {entry!r}")
    text = entry.strip()
    if text in SEED_FORMS:
        return ToolGrant(SEED_FORMS[text])
    if text in NAMES:
        return ToolGrant(ToolName(text))
    words: list[str] | None = None
    if text.startswith("bash:"):
        words = _words(entry, text.removeprefix("bash:"))
    elif text.split(maxsplit=1)[0:1] == ["/bash"]:
        words = _words(entry, text.removeprefix("/bash"))
        if not words:
            return ToolGrant(ToolName.BASH)
    if not words:
        raise ValueError(f"unknown tool {entry!r} in `tools`; known forms: {KNOWN_FORMS}")
    program = words[0]
    if "/" in program and not program.startswith("/"):
        raise ValueError(
            f"`tools` entry {entry!r} names program {program!r} by relative path; name the "
            "program (pytest) or give its absolute path (/usr/bin/pytest)"
        )
    return ToolGrant(ToolName.BASH, program, tuple(words[1:]))


def _words(entry: str, rest: str) -> list[str]:
    if "${" in rest or "\0" in rest:
        raise ValueError(
            f"`tools` entry {entry!r}: a program and its arguments are fixed text here "
            "(no templates, no NUL bytes)"
        )
    try:
        return shlex.split(rest)
    except ValueError as exc:
        raise ValueError(f"`tools` entry {entry!r}: {exc} (quote arguments properly)") from None


def parse_tools(entries: list[str]) -> list[str]:
    """The field validator of `tools`: every entry checked, kept as written."""
    for entry in entries:
        parse_grant(entry)
    return entries


@lru_cache(maxsize=512)
def _toolset(entries: tuple[str, ...]) -> ToolSet:
    return ToolSet(tuple(dict.fromkeys(parse_grant(e) for e in entries)))


def toolset(entries: Sequence[str]) -> ToolSet:
    """The parsed form of a (validated) `tools:` list."""
    return _toolset(tuple(entries))


def with_memory_tool(data: Any) -> Any:
    """A step's raw fields, with `memory: workflow` when `tools` names `memory` and
    `memory` is not given (a before-validator: the field must hold the scope)."""
    if not isinstance(data, dict) or not isinstance(data.get("tools"), list):
        return data
    if not any(isinstance(e, str) and e.strip() == "memory" for e in data["tools"]):
        return data
    if data.get("memory") is False:
        raise ValueError(
            "`tools` names memory but `memory` is false; drop one of them "
            "(`memory: <scope>` chooses where the memory files live)"
        )
    if data.get("memory") is None:
        return {**data, "memory": "workflow"}
    return data


def tools_problem(step_id: str, kind: ExecutorKind, swarm: bool, entries: list[str]) -> str | None:
    """Why a step may not have these `tools`, or None."""
    if not entries:
        return None
    if swarm:
        return (
            f"step {step_id!r} is a swarm: its `tools` belong to its agents "
            "(agents.NAME.tools); move them there"
        )
    if kind not in MODEL_KINDS:
        return (
            f"step {step_id!r} runs on {kind.value}, which has no model to give tools to: "
            "`tools` is for model steps (prompt, client, sampling)"
        )
    return None


def client_lines(grants: ToolSet) -> str:
    """What a client step's handoff says about its tools: the calling agent uses its own
    tools, only those the step grants, for what each grants."""
    parts = []
    files = [n.value for n in grants.names if n in (ToolName.READ, ToolName.GREP, ToolName.GLOB)]
    if files:
        parts.append(f"you may {'/'.join(files)} the workspace (read only: change no files)")
    if grants.bash_unlimited:
        parts.append("you may run programs in the workspace (argv, no shell pipelines)")
    elif grants.has(ToolName.BASH):
        allowed = ", ".join(shlex.join(p) for p in grants.bash_prefixes)
        parts.append(f"you may run only: {allowed} (with further arguments after them)")
    if grants.has(ToolName.MEMORY):
        parts.append("you may use tutti's memory (see Memory below)")
    if not parts:
        return ""
    return (
        "Tools: this step grants " + ", ".join(str(g) for g in grants.grants) + ". With your "
        "own tools, " + "; ".join(parts) + ". Use no other tool for this step."
    )
