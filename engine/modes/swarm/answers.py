"""Reading the agents' answers: a plan's subtasks, a synthesis's conflicts, a draft board,
and answers that should be JSON objects but came back as text."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tutti_mcp.engine.modes.swarm.consensus import (
    MAX_CONFLICTS,
    MAX_OPTIONS,
    distinct_positions,
    norm_position,
)
from tutti_mcp.engine.modes.swarm.spec import SwarmSpec


def reassign(spec: SwarmSpec, capability: str | None, load: Counter[str]) -> str:
    workers = spec.workers
    capable = (
        [w for w in workers if capability in spec.agents[w].capabilities] if capability else []
    )
    pool = capable or workers
    return min(pool, key=lambda w: (load[w], workers.index(w)))


def obj(output: Any) -> dict[str, Any] | None:
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            return None
    return output if isinstance(output, dict) else None


def text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


def same(a: Any, b: Any) -> bool:
    return norm_position(str(a)) == norm_position(str(b))


def conflicts(raw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(raw, list):
        return out
    for c in raw[:MAX_CONFLICTS]:
        if not isinstance(c, dict):
            continue
        options = distinct_positions([str(o) for o in c.get("options") or [] if str(o).strip()])
        if len(options) >= 2:
            out.append({"question": str(c.get("question", "")), "options": options[:MAX_OPTIONS]})
    return out


def board(drafts: dict[str, dict[str, Any]], k: int) -> str:
    return f"The board: every agent's draft of round {k}.\n\n" + "\n\n".join(
        f'<draft agent="{a}" position="{d.get("position", "")}">\n{d.get("answer", "")}\n</draft>'
        for a, d in drafts.items()
    )
