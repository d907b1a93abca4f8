"""A run's swarm steps at run time: the turns each adds (through engine.execution.growth,
like any step added at run time), what a turn's templates see as `turn`, and the swarm's
output once it ends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tutti_mcp.engine.modes.swarm import turns as T
from tutti_mcp.engine.modes.swarm.controller import Conductor, Finished, NewTurn, Turn
from tutti_mcp.engine.modes.swarm.record import swarm_output
from tutti_mcp.engine.modes.swarm.spec import Communication, SwarmSpec
from tutti_mcp.engine.templating import render
from tutti_mcp.memory.runs.records import StepRecord, StepStatus

HEARD_CHARS = 4000  # of each earlier turn, in a broadcast swarm's context


class SwarmTurns:
    def __init__(self, specs: Mapping[str, SwarmSpec]) -> None:
        self.specs = specs
        self.tasks: dict[str, str] = {}  # swarm step -> its task, rendered

    def next(
        self, sid: str, children: list[str], steps: Mapping[str, StepRecord]
    ) -> list[tuple[str, dict[str, Any]]] | tuple[dict[str, Any], StepStatus, str | None]:
        """The next batch of turns (id, scope), or the swarm's output, status and error."""
        spec = self.specs[sid]
        taken = [
            Turn(c, steps[c].scope or {}, steps[c].status, steps[c].output, steps[c].error)
            for c in children
        ]
        got = Conductor(sid, spec, taken).next()
        if isinstance(got, Finished):
            out = swarm_output(spec, got, [steps[c] for c in children])
            if got.missing:
                why = f"partial: {len(got.missing)} missing: " + "; ".join(got.missing)
                return out, StepStatus.DEGRADED, why
            return out, StepStatus.SUCCEEDED, None
        batch = 1 + max((steps[c].scope or {}).get("batch", 0) for c in children) if children else 1
        return [(t.id, self._scope(spec, t, batch, taken)) for t in got]

    def _scope(self, spec: SwarmSpec, t: NewTurn, batch: int, taken: list[Turn]) -> dict[str, Any]:
        scope = {**t.scope, "batch": batch}
        if spec.coordination.communication is Communication.BROADCAST:
            heard = [
                f'<turn agent="{x.scope["agent"]}" phase="{x.scope["phase"]}">\n'
                f"{_text(x.output)[:HEARD_CHARS]}\n</turn>"
                for x in taken
                if x.status.has_output
            ]
            if heard:
                scope["heard"] = "What the swarm has said so far:\n\n" + "\n\n".join(heard)
        return scope

    def turn(self, parent: str, scope: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, str]:
        """What a turn's templates read as `turn`: its prompt, its role, and the context it
        shares with the other turns of its phase."""
        spec = self.specs[parent]
        board = "\n\n".join(p for p in (scope.get("board", ""), scope.get("heard", "")) if p)
        task = self.tasks.get(parent)
        if task is None:  # the run's context holds what it reads: the swarm's dependencies
            task = self.tasks[parent] = render(spec.task, ctx)
        return {
            "prompt": scope.get("prompt", ""),
            "role": scope.get("role", ""),
            "shared": T.shared_context(spec, task, scope["phase"], board),
        }


def _text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
