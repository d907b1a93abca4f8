"""What each kind of agent turn says: its instructions (the agent's role first), the context
the agents of a phase share (sent first, so it can be a cached prompt prefix), the request,
and the JSON Schema of the answers the swarm reads (a plan, a draft, a ballot)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tutti_mcp.engine.modes.swarm.spec import StateSharing, SwarmSpec, Topology


def _object(required: tuple[str, ...] | None = None, **props: Any) -> dict[str, Any]:
    """A JSON Schema object of these properties, all required unless named, no others (as
    the API's structured outputs require)."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props if required is None else required),
        "additionalProperties": False,
    }


TEXT: dict[str, Any] = {"type": "string"}
SUBTASK = _object(("agent", "task"), agent=TEXT, task=TEXT, context=TEXT, capability=TEXT)
PLAN_SCHEMA = _object(subtasks={"type": "array", "items": SUBTASK})
CONFLICT = _object(question=TEXT, options={"type": "array", "items": TEXT})
SYNTHESIS_SCHEMA = _object(result=TEXT, conflicts={"type": "array", "items": CONFLICT})
POSITION_SCHEMA = _object(answer=TEXT, position=TEXT)
BALLOT_SCHEMA = _object(choice={"type": "integer"}, rationale=TEXT, confidence={"type": "number"})
DECISION_SCHEMA = _object(choice={"type": "integer"}, reason=TEXT)
SCHEMAS = {
    "plan": PLAN_SCHEMA,
    "synthesis": SYNTHESIS_SCHEMA,
    "draft": POSITION_SCHEMA,
    "answer": POSITION_SCHEMA,
    "ballot": BALLOT_SCHEMA,
    "decide": DECISION_SCHEMA,
}
POSITION_HELP = (
    "`answer` is your full answer; `position` is its conclusion in one short line, worded so "
    "that agents who conclude the same write the same line."
)


def task_block(task: str) -> str:
    return f"The swarm's task:\n<task>\n{task}\n</task>"


def roster(spec: SwarmSpec, names: list[str]) -> str:
    lines = []
    for n in names:
        a = spec.agents[n]
        caps = f" (capabilities: {', '.join(a.capabilities)})" if a.capabilities else ""
        lines.append(f"- {n}: {a.role}{caps}")
    return "\n".join(lines)


def role_text(spec: SwarmSpec, agent: str, phase: str, standing_in: str | None) -> str:
    """The system instructions of a turn: who the agent is and where it stands."""
    n = len(spec.agents)
    topo = spec.topology.value
    if agent.startswith("~"):
        head = "You are the person or agent who runs this workflow, stepping in for an agent."
    else:
        head = f"You are {agent}, one of {n} agents of a {topo} swarm. Your role: "
        head += spec.agents[agent].role
    if standing_in is not None:
        head += (
            f"\n\nAgent {standing_in} could not do this turn; you take it over, in its role: "
            f"{spec.agents[standing_in].role}"
        )
    return head


def shared_context(spec: SwarmSpec, task: str, phase: str, board: str) -> str:
    """What the agents of a phase all see first (a prompt prefix they share)."""
    sees_task = spec.topology is not Topology.HIERARCHICAL or phase != "work"
    if spec.coordination.state_sharing is StateSharing.SHARED:
        sees_task = True
    parts = [task_block(task)] if sees_task else []
    if board:
        parts.append(board)
    return "\n\n".join(parts)


def plan_prompt(spec: SwarmSpec) -> str:
    workers = spec.workers
    return (
        "Decompose the task into subtasks for the specialists below, each given to the one "
        "whose role fits it best. Give each subtask the context that specialist needs (it "
        "sees only its subtask and that context), and, where a subtask needs a capability, "
        f"name it. At most {spec.max_subtasks} subtasks.\n\nSpecialists:\n"
        f"{roster(spec, workers)}\n\n"
        'Answer with JSON: {"subtasks": [{"agent": NAME, "task": ..., "context": ..., '
        '"capability": ...}]}.'
    )


def work_prompt(subtask: dict[str, Any], sharing: StateSharing) -> str:
    """A specialist's request: its subtask, and the coordinator's context for it unless the
    swarm keeps its agents isolated."""
    text = f"Your subtask from the coordinator:\n{subtask['task']}"
    if subtask.get("context") and sharing is not StateSharing.ISOLATED:
        text += f"\n\nContext from the coordinator:\n{subtask['context']}"
    return text + "\n\nDo it, and report your result."


def results_block(results: list[tuple[str, str, str]]) -> str:
    """(agent, what it was asked, what it answered) as a board."""
    return "\n\n".join(
        f'<result agent="{a}">\nAsked: {asked}\n\n{answer}\n</result>'
        for a, asked, answer in results
    )


def synthesis_prompt(results: str, missing: list[str]) -> str:
    gaps = ""
    if missing:
        gaps = "\n\nMissing (an agent failed and nobody could take over): " + "; ".join(missing)
    return (
        f"The specialists' results:\n\n{results}{gaps}\n\nSynthesise them into the swarm's "
        "result. Where specialists disagree on something the result depends on, do not settle "
        "it yourself: list it under `conflicts` as a question with the options they hold. "
        'Answer with JSON: {"result": ..., "conflicts": [{"question": ..., "options": [...]}]}.'
    )


def draft_prompt(round_no: int) -> str:
    if round_no == 1:
        return f"Give your answer to the task. {POSITION_HELP}"
    return (
        "Above are the latest drafts of every agent (the board). Revise yours: keep what holds "
        "up, take what convinces you from the others, and change your position if you are "
        f"convinced. {POSITION_HELP}"
    )


def answer_prompt() -> str:
    return f"The hub broadcasts the task to you. Answer it independently. {POSITION_HELP}"


def refine_prompt(previous: tuple[str, str] | None) -> str:
    if previous is None:
        return "You are first in the line: do the task, and report your result."
    who, text = previous
    return (
        f"The previous agent ({who}) produced:\n<previous>\n{text}\n</previous>\n\n"
        "Refine it in your role: improve it and hand on the whole improved result."
    )


def options_text(options: list[str]) -> str:
    return "\n".join(f"{i}. {o}" for i, o in enumerate(options, 1))


def ballot_prompt(question: str, options: list[str]) -> str:
    return (
        f"The swarm disagrees on: {question}\n\nOptions:\n{options_text(options)}\n\n"
        "Cast your ballot: the number of the option you hold best, why, and your confidence "
        'from 0 to 1. Answer with JSON: {"choice": N, "rationale": ..., "confidence": X}.'
    )


def decide_prompt(question: str, options: list[str], tally_why: str | None) -> str:
    head = f"The swarm disagrees on: {question}\n\nOptions:\n{options_text(options)}"
    if tally_why is not None:
        head += f"\n\nThe vote did not decide it: {tally_why}. As coordinator you decide."
    else:
        head += "\n\nAs coordinator you decide."
    return head + ' Answer with JSON: {"choice": N, "reason": ...}.'


def final_prompt(result: str, decisions: list[str]) -> str:
    return (
        f"Your synthesis:\n<synthesis>\n{result}\n</synthesis>\n\nThe swarm decided:\n"
        + "\n".join(f"- {d}" for d in decisions)
        + "\n\nWrite the final result, applying these decisions."
    )


def aggregate_prompt(answers: str, decision: str | None, missing: list[str]) -> str:
    text = f"The spokes' answers:\n\n{answers}"
    if missing:
        text += "\n\nMissing (a spoke failed): " + "; ".join(missing)
    if decision:
        text += f"\n\nThe swarm decided: {decision}"
    return text + "\n\nAggregate them into the swarm's one answer."


def escalation_note(agent: str, error: str) -> str:
    return (
        f"\n\n(Escalated to you: agent {agent} failed this turn and has no backup: {error}. "
        "Do the turn yourself and report its output, or cancel the run.)"
    )


def turn_fields(scope: Mapping[str, Any]) -> dict[str, Any]:
    """A turn's own step fields: a JSON answer where the swarm reads one."""
    schema = SCHEMAS.get(scope["phase"])
    return {"output": "json" if schema else "text", "json_schema": schema}
