"""The shape of an approval gate in a spec: a step with `approve: "<question>"`, an
optional `preview`, `on_reject` and `timeout`, and nothing that would run something.
(Checks that need the whole workflow, such as whether `on_reject` names a step, are in
engine/workflow.py.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tutti_mcp.engine.spec import Step

# What a gate never has: it runs nothing itself, a person answers it.
EXECUTOR_FIELDS = ("run", "command", "args", "argv", "prompt", "system", "model", "op", "value")
ON_REJECT_FAIL = "fail"


def gate_field_problem(step: Step) -> str | None:
    """What is wrong with the gate fields of `step`, if anything (None: nothing)."""
    if step.approve is None:
        if step.run is not None and step.run.value == "gate":
            return "`run: gate` is not written out: a step with `approve: <question>` is a gate"
        for name in ("preview", "on_reject"):
            if getattr(step, name) is not None:
                return (
                    f"`{name}` belongs to approval gates: add `approve: <question>` to make "
                    f"step {step.id!r} a gate, or drop `{name}`"
                )
        return None
    if not step.approve.strip():
        return "`approve` is the question to put to the user; it is empty"
    for name in EXECUTOR_FIELDS:
        if getattr(step, name) is not None:
            return (
                f"step {step.id!r} is an approval gate (`approve`), which runs nothing itself: "
                f"drop `{name}`, and put the work in a step that depends on {step.id!r}"
            )
    if step.env:
        return f"step {step.id!r} is an approval gate (`approve`): drop `env`"
    if step.retry is not None:
        return (
            f"step {step.id!r} is an approval gate: it is asked once, so drop `retry` "
            "(`timeout` bounds how long it waits for an answer)"
        )
    if step.on_reject == step.id:
        return f"gate {step.id!r} cannot be its own `on_reject`; name another step, or `fail`"
    return None


def reject_target(step: Step) -> str | None:
    """The step a gate runs when rejected (None: the run fails)."""
    target = step.on_reject
    return None if target is None or target == ON_REJECT_FAIL else target
