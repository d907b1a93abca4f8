"""A swarm step's agents compiled as a workflow of their own (the swarm's *body*): one step
per agent, the template of that agent's turns, with the agent's model, thinking, tools and
executor resolved once. Each turn the swarm adds at run time is a copy of its agent's step
(engine.execution.growth); what the turn says comes from the swarm (engine.modes.swarm.turns)
through the `turn` name of its template context, so nothing an agent writes is ever read as
a template.

The body also holds the caller (`~caller`): a client step that takes over the turn of a
critical agent that failed with no backup (escalation)."""

from __future__ import annotations

from typing import Any

from tutti_mcp.engine.spec import ExecutorKind, FailurePolicy, Step, ThinkingMode, WorkflowSpec
from tutti_mcp.engine.spec_parts import MODEL_KINDS

CALLER = "~caller"  # not a valid agent name: it cannot clash with one
TURN_FIELDS = {"prompt": "${turn.prompt}", "system": "${turn.role}", "context": ["${turn.shared}"]}


def agent_steps(s: Step, default_thinking: ThinkingMode | None = None) -> list[Step]:
    """The template step of each agent's turns, and the caller's. An agent's thinking is its
    own, the swarm step's, or the spec's default; `auto` scores a prompt, and a turn's is
    not known before the run, so there it is standard."""
    swarm = s.swarm
    assert swarm is not None
    base: dict[str, Any] = {
        **TURN_FIELDS,
        "cache": s.cache,
        # A turn that fails is the swarm's to recover from (engine.modes.swarm.recovery):
        # it must not stop the run.
        "on_failure": FailurePolicy.CONTINUE,
        "retry": s.retry,
        "timeout": s.timeout,
    }
    out = []
    for name, agent in swarm.agents.items():
        fields: dict[str, Any] = {
            **base,
            "id": name,
            "model": agent.model or s.model,
            "thinking": _thinking(agent.thinking or s.thinking or default_thinking),
            "max_tokens": agent.max_tokens or s.max_tokens,
            "run": agent.run or s.run,
        }
        if "tools" in Step.model_fields:
            fields["tools"] = agent.tools
        out.append(Step.model_construct(**_defaults(fields)))
    caller: dict[str, Any] = {
        **base,
        "id": CALLER,
        "run": ExecutorKind.CLIENT,
        "thinking": s.thinking,
    }
    out.append(Step.model_construct(**_defaults(caller)))
    return out


def _defaults(fields: dict[str, Any]) -> dict[str, Any]:
    """A step's fields: the given ones over the model's defaults (model_construct skips
    validation, and the agent names were validated as the swarm's)."""
    out: dict[str, Any] = {
        name: info.get_default(call_default_factory=True)
        for name, info in Step.model_fields.items()
        if not info.is_required()
    }
    out.update(fields)
    return out


def body_spec(s: Step, spec: WorkflowSpec) -> WorkflowSpec:
    steps = agent_steps(s, spec.defaults.thinking)
    return spec.model_copy(update={"steps": steps, "name": f"{spec.name}/{s.id}"})


def _thinking(mode: ThinkingMode | None) -> ThinkingMode:
    return ThinkingMode.STANDARD if mode in (None, ThinkingMode.AUTO) else mode


def is_model_run(kind: ExecutorKind) -> bool:
    return kind in MODEL_KINDS
