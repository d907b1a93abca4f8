"""The swarm's output: its result, and the record that makes it auditable after the fact:
each agent's contribution (turns, tokens, cost), who talked to whom (as Mermaid), the
consensus record, the recovery decisions, and coordination figures (turns, parallelism
achieved, wall time against the critical path of its phases)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

from tutti_mcp.engine.modes.swarm.compile import CALLER
from tutti_mcp.engine.modes.swarm.controller import Finished
from tutti_mcp.engine.modes.swarm.spec import SwarmSpec, Topology
from tutti_mcp.memory.runs.records import StepRecord

TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _name(agent: str) -> str:
    return "caller" if agent == CALLER else agent


def swarm_output(spec: SwarmSpec, done: Finished, turns: list[StepRecord]) -> dict[str, Any]:
    agents: dict[str, dict[str, Any]] = {
        n: {"turns": 0, "failed": 0, "cost_usd": 0.0, **dict.fromkeys(TOKEN_KEYS, 0)}
        for n in spec.agents
    }
    for rec in turns:
        scope = rec.scope or {}
        a = agents.setdefault(
            _name(scope["agent"]),
            {"turns": 0, "failed": 0, "cost_usd": 0.0, **dict.fromkeys(TOKEN_KEYS, 0)},
        )
        a["turns"] += 1
        a["failed"] += rec.status.value == "failed"
        usage = rec.usage or {}
        for k in TOKEN_KEYS:
            a[k] += int(usage.get(k) or 0)
        a["cost_usd"] = round(a["cost_usd"] + float(usage.get("cost_usd") or 0.0), 6)
    talks = conversations(spec, turns)
    out: dict[str, Any] = {
        "result": done.result,
        "topology": spec.topology.value,
        "partial": bool(done.missing),
        "agents": agents,
        "consensus": done.consensus,
        "recovery": done.recovery,
        "talks": [{"from": a, "to": b, "messages": n} for (a, b), n in talks.items()],
        "mermaid": mermaid(talks),
        "figures": figures(turns),
    }
    if done.missing:
        out["missing"] = done.missing
    if done.notes:
        out["notes"] = done.notes
    return out


def conversations(spec: SwarmSpec, turns: list[StepRecord]) -> Counter[tuple[str, str]]:
    """Who sent what to whom: the messages the topology carried between agents."""
    talks: Counter[tuple[str, str]] = Counter()
    ok = [r for r in turns if r.status.has_output and r.scope]
    lead = spec.lead
    by_phase: dict[str, list[str]] = {}
    for r in ok:
        assert r.scope is not None
        by_phase.setdefault(r.scope["phase"], []).append(_name(r.scope["agent"]))
    if spec.topology is Topology.PIPELINE:
        line = by_phase.get("refine", [])
        for a, b in itertools.pairwise(line):
            talks[a, b] += 1
        return talks
    if spec.topology is Topology.MESH:
        rounds: dict[int, list[str]] = {}
        for r in ok:
            assert r.scope is not None
            if r.scope["phase"] == "draft":
                rounds.setdefault(r.scope["round"], []).append(_name(r.scope["agent"]))
        for k, members in rounds.items():
            for a in rounds.get(k - 1, []):  # round k's agents read round k-1's board
                for b in members:
                    if a != b:
                        talks[a, b] += 1
    else:  # hierarchical and star: through the lead
        for w in by_phase.get("work", []) + by_phase.get("answer", []):
            talks[lead, w] += 1  # the subtask, or the broadcast task
            talks[w, lead] += 1  # the result
    for v in by_phase.get("ballot", []):
        talks[v, lead] += 1
    return talks


def mermaid(talks: Mapping[tuple[str, str], int]) -> str:
    lines = ["graph LR"]
    for (a, b), n in talks.items():
        lines.append(f"  {a} -->|{n}| {b}")
    return "\n".join(lines)


def figures(turns: list[StepRecord]) -> dict[str, Any]:
    """Turns, and time: wall (first start to last end), busy (the turns' durations summed),
    parallelism achieved (busy over wall), and the critical path: the longest turn of each
    batch (the turns added together), summed."""
    timed = [r for r in turns if r.started_at is not None and r.finished_at is not None]
    out: dict[str, Any] = {"turns": len(turns), "batches": 0}
    if not timed:
        return out
    start = min(r.started_at for r in timed if r.started_at is not None)
    end = max(r.finished_at for r in timed if r.finished_at is not None)
    longest: dict[int, float] = {}
    busy = 0.0
    for r in timed:
        assert r.started_at is not None and r.finished_at is not None
        d = r.finished_at - r.started_at
        busy += d
        b = (r.scope or {}).get("batch", 0)
        longest[b] = max(longest.get(b, 0.0), d)
    wall = end - start
    critical = sum(longest.values())
    out |= {
        "batches": len(longest),
        "wall_s": round(wall, 4),
        "busy_s": round(busy, 4),
        "parallelism": round(busy / wall, 2) if wall > 0 else None,
        "critical_path_s": round(critical, 4),
        "wall_over_critical_path": round(wall / critical, 3) if critical > 0 else None,
    }
    return out
