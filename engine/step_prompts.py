"""Named prompt templates: the seed's `/query`, `/task` and `/protocol` commands, and how a
step becomes a system prompt and a user message.

The system prompt is ordered from the most widely shared part to the step's own: the
preamble (every step), the step's `context` documents (shared by the steps that name
them), then the command's instructions, the step's `system` and the output format. Steps
that share the leading parts share a prompt prefix, which the prompt executor can send as
a cacheable block.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from tutti_mcp.engine.spec import Step

_PREAMBLE = (
    "You are one step of a multi-step workflow run by tutti. Your answer is stored as this "
    "step's output and passed to later steps, so make it self-contained and concrete."
)

COMMAND_SYSTEM = {
    "/query": "Investigate the request and report your findings: facts, locations, evidence. "
    "Do not propose changes unless asked.",
    "/task": "Carry out the task. Report what you did, the result, and anything left undone.",
    "/protocol": "Follow the procedure or validation protocol. Report each check as PASS or FAIL "
    "with its evidence, then a one-line verdict.",
}
JSON_HINT = "Answer with a single JSON value and nothing else."
SCHEMA_HINT = "The value must match this JSON Schema:"


@dataclass(frozen=True)
class SystemParts:
    """A step's system prompt in two parts: what other steps may share (the preamble and
    context documents) and what is the step's own, both templates, plus `literal` text
    appended to the step's own part unrendered (a JSON Schema is data, not a template)."""

    shared: str
    own: str
    literal: str = ""

    def rendered(self, render: Callable[[str], str]) -> tuple[str, str]:
        own = "\n\n".join(p for p in (render(self.own) if self.own else "", self.literal) if p)
        return render(self.shared), own


def system_parts(step: Step, *, structured: bool = False) -> SystemParts:
    """`structured`: the API constrains the answer to the step's JSON Schema, so the prompt
    need not spell it out."""
    shared = "\n\n".join([_PREAMBLE, *step.context])
    own: list[str] = []
    if step.command:
        head = step.command.split()[0]
        if head in COMMAND_SYSTEM:
            own.append(COMMAND_SYSTEM[head])
    if step.system:
        own.append(step.system)
    literal = ""
    if step.output == "json":
        own.append(JSON_HINT)
        if step.json_schema is not None and not structured:
            literal = f"{SCHEMA_HINT}\n{json.dumps(step.json_schema, indent=1)}"
    return SystemParts(shared, "\n\n".join(own), literal)


def system_prompt(
    step: Step, render: Callable[[str], str] | None = None, *, structured: bool = False
) -> str:
    """The whole system prompt, rendered (templates left as they are without `render`)."""
    shared, own = system_parts(step, structured=structured).rendered(render or str)
    return "\n\n".join(p for p in (shared, own) if p)


def user_prompt_template(step: Step) -> str:
    """The unrendered user message: `prompt`, else `args` (the seed's form)."""
    return step.prompt if step.prompt is not None else (step.args or "")
