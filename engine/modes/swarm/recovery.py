"""Agent failure recovery. A turn that still fails after its retries is handled by the
severity of losing its agent:

- critical: the turn is the coordinator's or the hub's (or a tie-breaker's), or its agent is
  the only holder of a capability: its `backup` takes over, or else the turn is escalated to
  the caller (a client step: the run waits for whoever drives it);
- major: another live agent has the capability the work needs: the work is redistributed
  to the least-busy such agent;
- minor: nobody else can take it: the swarm goes on without it, its result marked partial,
  naming what is missing.

An agent named as `backup` takes over whatever the severity. An agent that failed a turn is
not given another turn in the same swarm. Every decision is recorded with its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tutti_mcp.engine.modes.swarm.spec import SwarmSpec, Topology

LEAD_PHASES = frozenset({"plan", "synthesis", "decide", "final", "aggregate"})
REDISTRIBUTED_PHASES = frozenset({"work", "refine"})


@dataclass(frozen=True)
class Decision:
    action: str  # backup | escalate | redistribute | degrade
    severity: str  # critical | major | minor
    reason: str
    to: str | None = None  # who does the turn now

    def record(self, agent: str, turn: str, error: str | None) -> dict[str, Any]:
        out = {
            "agent": agent,
            "turn": turn,
            "severity": self.severity,
            "action": self.action,
            "reason": self.reason,
            "error": error,
        }
        if self.to is not None:
            out["to"] = self.to
        return out


def unique_capability(spec: SwarmSpec, agent: str) -> str | None:
    """A capability only `agent` holds, if it has one."""
    mine = spec.agents[agent].capabilities
    others = {c for n, a in spec.agents.items() if n != agent for c in a.capabilities}
    return next((c for c in mine if c not in others), None)


def decide(
    spec: SwarmSpec,
    agent: str,
    phase: str,
    needs: list[str],
    down: set[str],
    load: Counter[str],
) -> Decision:
    """What happens to a failed turn of `agent` in `phase`; `needs`: the capabilities its
    work asks for; `down`: agents that failed a turn (this one included)."""
    severity, why = _severity(spec, agent, phase)
    backup = spec.agents[agent].backup if agent in spec.agents else None
    if backup is not None and backup not in down:
        return Decision("backup", severity, f"{why}; its backup {backup} takes over", backup)
    if backup is not None:
        why += f"; its backup {backup} failed too"
    if severity == "critical":
        return Decision("escalate", severity, f"{why}; no backup: escalated to the caller")
    candidates = [
        n
        for n in _pool(spec)
        if n not in down and all(c in spec.agents[n].capabilities for c in needs)
    ]
    if phase in REDISTRIBUTED_PHASES and candidates:
        to = min(candidates, key=lambda n: (load[n], list(spec.agents).index(n)))
        needed = f"capability {', '.join(needs)}" if needs else "no particular capability"
        return Decision(
            "redistribute", "major", f"{why}; the work needs {needed}: {to} takes it", to
        )
    lost = "nobody else has what it needs" if phase in REDISTRIBUTED_PHASES else "its own view"
    return Decision("degrade", "minor", f"{why}; {lost}: the swarm goes on without it")


def _severity(spec: SwarmSpec, agent: str, phase: str) -> tuple[str, str]:
    if agent.startswith("~"):
        return "critical", "the caller's turn"
    if phase in LEAD_PHASES:
        return "critical", f"{agent} is the {spec.lead_word}"
    cap = unique_capability(spec, agent)
    if cap is not None:
        return "critical", f"{agent} is the only agent with capability {cap!r}"
    return ("major" if phase in REDISTRIBUTED_PHASES else "minor"), f"{agent} failed its turn"


def _pool(spec: SwarmSpec) -> list[str]:
    """Who may take over a worker's work: the other workers (the lead of a hierarchical or
    star swarm has its own turns to do)."""
    if spec.topology in (Topology.HIERARCHICAL, Topology.STAR):
        return spec.workers
    return list(spec.agents)
