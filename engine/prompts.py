"""Named prompt templates: the seed's `/query`, `/task` and `/protocol` commands, and how a
step becomes a system prompt and a user message."""

from __future__ import annotations

from engine.spec import Step

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


def system_prompt(step: Step) -> str:
    parts = [_PREAMBLE]
    if step.command:
        head = step.command.split()[0]
        if head in COMMAND_SYSTEM:
            parts.append(COMMAND_SYSTEM[head])
    if step.system:
        parts.append(step.system)
    if step.output == "json":
        parts.append(JSON_HINT)
    return "\n\n".join(parts)


def user_prompt_template(step: Step) -> str:
    """The unrendered user message: `prompt`, else `args` (the seed's form)."""
    return step.prompt if step.prompt is not None else (step.args or "")
