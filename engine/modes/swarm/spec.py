"""The swarm spec: agents (role, model, thinking, tools, capabilities, backup) in a topology,
how they coordinate, the task and the limits.

A swarm is a step (`{id: review, swarm: {...}}`), so it can sit in a chain; the top-level
form of the seed (`type: swarm`, `topology`, `agents`, ...) is that step alone
(engine.modes.sugar). Checks that need the whole roster (an unknown `backup` or
`coordinator`, a hub) are here too, so they are reported before anything runs.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from tutti_mcp.engine.spec_parts import ExecutorKind, SpecModel, ThinkingMode
from tutti_mcp.engine.toolbox.spec import parse_tools

AGENT_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
DEFAULT_TASK = "${inputs.task}"
AGENT_RUNS = (ExecutorKind.PROMPT, ExecutorKind.CLIENT, ExecutorKind.SAMPLING)


class Topology(StrEnum):
    HIERARCHICAL = "hierarchical"  # the coordinator decomposes, specialists work, it synthesises
    MESH = "mesh"  # rounds: every agent sees the others' drafts and revises its own
    PIPELINE = "pipeline"  # each agent refines the previous agent's output, in order
    STAR = "star"  # the hub broadcasts the task, spokes answer in parallel, the hub aggregates


class ConflictResolution(StrEnum):
    CONSENSUS = "consensus"  # ballots, decided by a qualified rule (supermajority by default)
    VOTE = "vote"  # ballots, decided by a simple majority by default
    COORDINATOR = "coordinator"  # the coordinator decides, and says why


class VoteRule(StrEnum):
    MAJORITY = "majority"  # more than half of the ballots
    SUPERMAJORITY = "supermajority"  # at least two thirds of the ballots
    UNANIMITY = "unanimity"  # every ballot
    WEIGHTED = "weighted"  # more than half of the ballots' summed confidence


class Communication(StrEnum):
    EVENT_DRIVEN = "event_driven"  # a turn gets what the topology sends it
    BROADCAST = "broadcast"  # ... and every turn committed in the swarm before it


class StateSharing(StrEnum):
    HIERARCHICAL = "hierarchical"  # a specialist sees its subtask and the context given it
    SHARED = "shared"  # every agent sees the whole task
    ISOLATED = "isolated"  # a specialist sees its subtask only


class Agent(SpecModel):
    role: str = Field(min_length=1, description="what the agent does: its instructions")
    model: str | None = Field(None, description="a model id or alias; default: the spec's")
    thinking: ThinkingMode | None = None
    tools: list[str] = Field(
        default_factory=list, description="the agent's toolbox: read, grep, glob, bash, memory"
    )
    capabilities: list[str] = Field(
        default_factory=list, description="what it can do; used to redistribute work"
    )
    backup: str | None = Field(None, description="the agent that takes over if this one fails")
    run: ExecutorKind | None = Field(
        None, description="prompt, client or sampling; default: where model steps run"
    )
    max_tokens: int | None = Field(None, ge=1, le=128_000)

    @field_validator("tools")
    @classmethod
    def _tool_forms(cls, v: list[str]) -> list[str]:
        return parse_tools(v)

    @field_validator("run")
    @classmethod
    def _model_run(cls, v: ExecutorKind | None) -> ExecutorKind | None:
        if v is not None and v not in AGENT_RUNS:
            raise ValueError(
                f"an agent runs on a model: prompt, client or sampling, not {v.value!r}"
            )
        return v


class Coordination(SpecModel):
    communication: Communication = Communication.EVENT_DRIVEN
    state_sharing: StateSharing = StateSharing.HIERARCHICAL
    conflict_resolution: ConflictResolution = ConflictResolution.CONSENSUS
    rule: VoteRule | None = Field(
        None, description="how ballots decide; default: supermajority for consensus, else majority"
    )
    coordinator: str | None = Field(
        None,
        description="the coordinator (hierarchical), hub (star) or tie-breaker; default: the "
        "agent named coordinator or hub, else the first agent",
    )

    @property
    def vote_rule(self) -> VoteRule:
        if self.rule is not None:
            return self.rule
        if self.conflict_resolution is ConflictResolution.CONSENSUS:
            return VoteRule.SUPERMAJORITY
        return VoteRule.MAJORITY


class SwarmSpec(SpecModel):
    topology: Topology = Topology.HIERARCHICAL
    agents: dict[str, Agent] = Field(min_length=1)
    coordination: Coordination = Coordination()
    task: str = Field(DEFAULT_TASK, min_length=1, description="the task: text or a template")
    max_rounds: int = Field(3, ge=1, le=20, description="mesh: revision rounds at most")
    max_subtasks: int = Field(
        16, ge=1, le=64, description="hierarchical: subtasks the coordinator may hand out"
    )

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not re.match(AGENT_NAME, name):
                raise ValueError(
                    f"agent name {name!r} must start with a letter or _ and use only letters, "
                    "digits and _, at most 64 characters"
                )
        return v

    @model_validator(mode="after")
    def _roster(self) -> SwarmSpec:
        names = list(self.agents)
        known = ", ".join(names)
        lead = self.coordination.coordinator
        if lead is not None and lead not in self.agents:
            raise ValueError(f"coordination.coordinator: unknown agent {lead!r}; agents: {known}")
        for name, agent in self.agents.items():
            if agent.backup is None:
                continue
            if agent.backup not in self.agents:
                raise ValueError(
                    f"agents.{name}.backup: unknown agent {agent.backup!r}; agents: {known}"
                )
            if agent.backup == name:
                raise ValueError(f"agents.{name}.backup: an agent cannot be its own backup")
        if self.topology in (Topology.HIERARCHICAL, Topology.STAR) and len(names) < 2:
            raise ValueError(
                f"a {self.topology.value} swarm needs a {self.lead_word} and at least one other "
                f"agent; it has only {known}"
            )
        return self

    @property
    def lead_word(self) -> str:
        return "hub" if self.topology is Topology.STAR else "coordinator"

    @property
    def lead(self) -> str:
        """The coordinator, hub or tie-breaker."""
        if self.coordination.coordinator is not None:
            return self.coordination.coordinator
        for name in (self.lead_word, "coordinator", "hub"):
            if name in self.agents:
                return name
        return next(iter(self.agents))

    @property
    def workers(self) -> list[str]:
        """The agents other than the lead, in spec order (specialists, spokes); every agent
        for mesh and pipeline, where the lead only breaks ties."""
        if self.topology in (Topology.MESH, Topology.PIPELINE):
            return list(self.agents)
        return [n for n in self.agents if n != self.lead]


def swarm_phases(swarm: SwarmSpec) -> int:
    """Phases of turns one after the other, at least (without votes or recoveries)."""
    return {
        Topology.HIERARCHICAL: 3,  # plan, the specialists together, synthesis
        Topology.STAR: 2,  # the spokes together, the hub's aggregate
        Topology.MESH: 1,  # one round, if the agents agree at once
        Topology.PIPELINE: len(swarm.agents),
    }[swarm.topology]


def swarm_shape(swarm: SwarmSpec) -> str:
    """The plan's one-line description of a swarm step."""
    lead, workers = swarm.lead, swarm.workers
    n = len(swarm.agents)
    how = {
        Topology.HIERARCHICAL: f"{lead} plans, {len(workers)} specialists work in parallel, "
        f"{lead} synthesises",
        Topology.STAR: f"{lead} broadcasts, {len(workers)} spokes answer in parallel, "
        f"{lead} aggregates",
        Topology.MESH: f"rounds of {n} drafts in parallel until they agree "
        f"(at most {swarm.max_rounds})",
        Topology.PIPELINE: " -> ".join(swarm.agents),
    }[swarm.topology]
    return f"{swarm.topology.value} swarm of {n} agents: {how}"


def swarm_turns(swarm: SwarmSpec) -> dict[str, tuple[int, int]]:
    """Each agent's expected turns, fewest to most (a specialist: one subtask, up to two), without
    votes or recoveries."""
    lead = swarm.lead
    if swarm.topology is Topology.MESH:
        return {n: (1, swarm.max_rounds) for n in swarm.agents}
    if swarm.topology is Topology.PIPELINE:
        return {n: (1, 1) for n in swarm.agents}
    lead_turns = (2, 3) if swarm.topology is Topology.HIERARCHICAL else (1, 2)
    most = 2 if swarm.topology is Topology.HIERARCHICAL else 1
    return {n: lead_turns if n == lead else (1, most) for n in swarm.agents}
