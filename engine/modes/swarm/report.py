"""A swarm step's record as Markdown, for the run's report and `tutti show`: each agent's
contribution, who talked to whom, the consensus record, the recovery decisions and the
coordination figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tutti_mcp.memory.runs.records import RunRecord


def swarm_steps(run: RunRecord) -> list[str]:
    """The run's swarm steps that have taken turns, in order."""
    found: dict[str, None] = {}
    for rec in run.steps.values():
        if rec.parent is not None and rec.scope and "slot" in rec.scope:
            found.setdefault(rec.parent, None)
    return list(found)


def swarm_markdown(sid: str, out: Mapping[str, Any]) -> list[str]:
    lines = [f"## Swarm `{sid}` ({out.get('topology')})", ""]
    if out.get("partial"):
        lines += ["**Partial:** missing " + "; ".join(out.get("missing") or []), ""]
    lines += ["| agent | turns | failed | tokens in | cache read | tokens out | cost |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for name, a in (out.get("agents") or {}).items():
        lines.append(
            f"| {name} | {a['turns']} | {a['failed']} | {a['input_tokens']} | "
            f"{a['cache_read_input_tokens']} | {a['output_tokens']} | ${a['cost_usd']:.4f} |"
        )
    fig = out.get("figures") or {}
    if "wall_s" in fig:
        lines += [
            "",
            f"- Turns: {fig['turns']} in {fig['batches']} batches; parallelism achieved "
            f"{fig['parallelism']}x ({fig['busy_s']} s of turns in {fig['wall_s']} s)",
            f"- Wall time {fig['wall_s']} s against a critical path of {fig['critical_path_s']} s"
            f" ({fig['wall_over_critical_path']}x)",
        ]
    for note in out.get("notes") or []:
        lines.append(f"- {note}")
    for c in out.get("consensus") or []:
        lines += ["", f"### Decided: {c['question']}", ""]
        lines += [f"{i}. {o}" for i, o in enumerate(c["options"], 1)]
        tally = c.get("tally")
        if tally:
            votes = ", ".join(f"option {k}: {v}" for k, v in tally["votes"].items())
            lines += ["", f"Rule {tally['rule']}; votes {votes}; {tally['why']}."]
            for b in c.get("ballots") or []:
                lines.append(
                    f"- {b['agent']}: option {b['choice']} (confidence {b['confidence']}): "
                    f"{b['rationale']}"
                )
            for a in c.get("abstained") or []:
                lines.append(f"- abstained: {a}")
        by = c["decided_by"]
        reason = f": {c['reason']}" if c.get("reason") else ""
        lines += ["", f"**Decision:** {c['decision']} (by {by}{reason})"]
    if out.get("recovery"):
        lines += ["", "### Recovery", ""]
        for r in out["recovery"]:
            to = f" -> {r['to']}" if r.get("to") else ""
            lines.append(
                f"- `{r['turn']}` ({r['agent']}): {r['severity']}, {r['action']}{to}: {r['reason']}"
            )
    if out.get("mermaid"):
        lines += ["", "```mermaid", out["mermaid"], "```"]
    return lines


def swarm_sections(run: RunRecord) -> list[str]:
    lines: list[str] = []
    for sid in swarm_steps(run):
        out = run.steps[sid].output
        if isinstance(out, dict) and "agents" in out:
            lines += ["", *swarm_markdown(sid, out)]
    return lines
