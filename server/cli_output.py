"""How the command line shows runs and plans to people (and, with --json, to programs)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from tutti_mcp.engine.modes.swarm.report import swarm_sections, swarm_steps
from tutti_mcp.engine.modes.swarm.spec import Topology
from tutti_mcp.engine.plan import Plan
from tutti_mcp.engine.report import gantt, recovery_plan
from tutti_mcp.engine.spec import WorkflowSpec
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus
from tutti_mcp.server.console import out


def run_json(run: RunRecord, cmd: str = "tutti") -> dict[str, Any]:
    """The `--json` shape: one object with the run, its steps, outputs and metrics; the
    recovery plan's command spelled with `cmd` (see server.hints)."""
    recovery = recovery_plan(run)
    if recovery is not None:
        recovery = {**recovery, "command": f"{cmd} resume {run.id}"}
    return {
        "run_id": run.id,
        "name": run.name,
        "status": run.status.value,
        "error": run.error,
        "parent_run_id": run.parent_run_id,
        "inputs": run.inputs,
        "outputs": {s.step_id: s.output for s in run.steps.values() if s.status.has_output},
        "steps": {
            s.step_id: {
                "status": s.status.value,
                "attempts": s.attempts,
                "duration_s": None if s.duration_s is None else round(s.duration_s, 4),
                "output": s.output,
                "error": s.error,
                **({"usage": s.usage} if s.usage else {}),  # tokens, cost, tool_calls
                **({"detail": s.detail} if s.detail else {}),
            }
            for s in run.steps.values()
        },
        "metrics": run.metrics,
        "recovery": recovery,
    }


def print_run(
    run: RunRecord, *, cmd: str = "tutti", with_gantt: bool = False, every_output: bool = False
) -> None:
    """Every step in a table, the metrics, what to do next, the final outputs in full (of a
    run that succeeded) or every output in full (`every_output`), and the Gantt chart
    (`with_gantt`). `cmd` spells the commands it suggests (see server.hints)."""
    table = Table(title=f"{run.name}  {run.id}  [{run.status.value}]", title_justify="left")
    for col in ("step", "status", "attempts", "seconds", "output / error"):
        table.add_column(col, overflow="fold")
    for s in run.steps.values():
        secs = "" if s.duration_s is None else f"{s.duration_s:.3f}"
        table.add_row(s.step_id, s.status.value, str(s.attempts), secs, short(_said(s)))
    out.print(table)
    m = run.metrics or {}
    if m and run.status is not RunStatus.WAITING:
        tokens = m.get("tokens") or {}
        cost = m.get("cost_usd")
        out.print(
            f"critical path: {' -> '.join(m.get('critical_path') or []) or '-'} "
            f"({m.get('critical_path_s', 0):.3f}s)\n"
            f"step time {m.get('step_time_s', 0):.3f}s over {m.get('busy_s', 0):.3f}s with steps "
            f"running: speedup {m.get('speedup') or '-'}x against running steps one by one\n"
            f"wall {m.get('wall_s') or 0:.3f}s from the first start, "
            f"{m.get('active_s') or 0:.3f}s executing in {m.get('segments', 0)} segment(s)\n"
            f"tokens in {tokens.get('input_tokens', 0)}, out {tokens.get('output_tokens', 0)} "
            f"(thinking {tokens.get('thinking_tokens', 0)}); cost "
            + ("unknown" if cost is None else f"${cost:.4f}")
        )
    _print_next(run, cmd, 200)
    if every_output:
        shown = [s.step_id for s in run.steps.values() if s.status.has_output]
    else:
        shown = final_steps(run) if run.status is RunStatus.SUCCEEDED else []
    for sid in shown:
        out.print(f"\n[bold]{escape(sid)}[/bold]:")
        out.print(_text(_shown(run, sid)), markup=False)
    for line in swarm_sections(run):  # the swarm's record, whatever was shown
        out.print(line, markup=False)
    if with_gantt:
        out.print("\n```mermaid\n" + gantt(run) + "\n```", markup=False)


# `tutti run` without --full: what fits on one screen
SUMMARY_STEPS = 12  # step lines at most; beyond, the steps that did not succeed come first
SUMMARY_FINALS = 3  # final outputs shown
SUMMARY_LINES = 10  # lines of each final output


def print_summary(run: RunRecord, *, cmd: str, db: Path | str | None) -> None:
    """The run on one screen: status, steps, time, one line per step, tokens and cost, what
    to do next, the final outputs cut to a few lines; then where the run is stored (`db`;
    None: not stored) and the commands that show it again, in full."""
    width = max(out.width, 40)
    steps = list(run.steps.values())
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.status.value] = counts.get(s.status.value, 0) + 1
    m = run.metrics or {}
    wall = m.get("wall_s")
    speedup = m.get("speedup")
    added = sum(1 for s in steps if s.parent is not None)
    grown = f", {added} of them added at run time" if added else ""
    out.print(
        f"[bold]{run.name}[/bold] {run.id}: [bold]{run.status.value}[/bold], {len(steps)} steps"
        f"{grown} ("
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + ")"
        + ("" if wall is None else f" in {wall:.3f}s")
        + ("" if not speedup else f", speedup {speedup}x"),
        overflow="ignore",
    )
    shown = steps
    if len(steps) > SUMMARY_STEPS:
        shown = [s for s in steps if s.status is not StepStatus.SUCCEEDED][:SUMMARY_STEPS]
    idw = min(max((len(s.step_id) for s in shown), default=0), 24)
    for s in shown:
        secs = "" if s.duration_s is None else f"{s.duration_s:.3f}s"
        head = f"  {s.step_id:<{idw}}  {s.status.value:<11} {secs:>8}  "
        out.print((head + short(_said(s), max(width - len(head), 10))).rstrip(), markup=False)
    if len(shown) < len(steps):
        out.print(f"  ... {len(steps) - len(shown)} more steps succeeded")
    tokens = m.get("tokens") or {}
    cost = m.get("cost_usd")
    if tokens.get("input_tokens") or tokens.get("output_tokens") or cost:
        out.print(
            f"tokens in {tokens.get('input_tokens', 0)}, out {tokens.get('output_tokens', 0)} "
            f"(thinking {tokens.get('thinking_tokens', 0)}); cost "
            + ("unknown" if cost is None else f"${cost:.4f}")
        )
    _print_next(run, cmd, width)
    finals = final_steps(run) if run.status is RunStatus.SUCCEEDED else []
    for sid in finals[:SUMMARY_FINALS]:
        lines = _text(_shown(run, sid)).rstrip().splitlines() or [""]
        out.print(f"\n[bold]{escape(sid)}[/bold]:")
        for line in lines[:SUMMARY_LINES]:
            out.print(short_line(line, width), markup=False)
        if len(lines) > SUMMARY_LINES:
            out.print(f"... {len(lines) - SUMMARY_LINES} more lines")
    if len(finals) > SUMMARY_FINALS:
        out.print(f"\n... {len(finals) - SUMMARY_FINALS} more final outputs")
    out.print()
    if db is None:
        out.print(
            "not stored (optimization.state_persistence is false): "
            "run it again with --full to see every output"
        )
        return
    out.print(f"stored in {db}", markup=False, overflow="ignore")
    out.print(
        f"see it again: {cmd} show {run.id}   (every output in full: add --full)",
        markup=False,
        overflow="ignore",
    )


def _print_next(run: RunRecord, cmd: str, width: int) -> None:
    """Partial success, the error, and what to do next: resume, or complete client steps."""
    m = run.metrics or {}
    if m.get("partial"):
        handled = [
            s.step_id for s in run.steps.values() if s.status.value in ("failed", "degraded")
        ]
        out.print(
            f"succeeded in part: {', '.join(handled)} failed and their failure policy applied"
        )
    if run.error:
        out.print(f"[bold]error:[/bold] {escape(short(run.error, 3 * width))}")
    plan = recovery_plan(run)
    if plan and run.status is not RunStatus.WAITING:
        r = plan["resume"]
        out.print(
            f"resume keeps {len(r['keeps_committed'])} committed steps, re-runs "
            f"{', '.join(r['reruns']) or 'none'}, then runs {len(r['then_runs'])} more: "
            f"{cmd} resume {run.id}",
            markup=False,
        )
    if run.status is RunStatus.WAITING:
        for s in run.steps.values():
            approval = s.request.get("approval") if s.status is StepStatus.WAITING else None
            if approval is not None:  # an approval gate
                question = escape(short(str(approval.get("question")), 200))
                out.print(f"approval needed: [bold]{escape(s.step_id)}[/bold]: {question}")
                if approval.get("preview"):
                    out.print(short(str(approval["preview"]), 3 * width), markup=False)
                out.print(
                    f"  answer: {cmd} approve {run.id} {s.step_id} --yes (or --no) [--note TEXT]",
                    markup=False,
                )
            elif s.status is StepStatus.WAITING:
                instr = s.request.get("instructions", "")
                sid = escape(s.step_id)
                out.print(f"waiting for you: [bold]{sid}[/bold]: {escape(short(instr, 200))}")
                out.print(
                    # quoted: `review[3]` is a glob pattern to a shell
                    f"  when done: {cmd} complete {run.id} {shlex.quote(s.step_id)} --output "
                    "TEXT --resume",
                    markup=False,
                )


def final_steps(run: RunRecord) -> list[str]:
    """The steps whose output nothing else reads (through `depends_on` or a template) and
    that are no other step's fallback: a run's results."""
    wf = compile_workflow(WorkflowSpec.model_validate(run.spec))
    return [
        sid
        for sid in wf.order
        if not wf.dependents[sid]
        and sid not in wf.fallback_of
        and sid in run.steps
        and run.steps[sid].status.has_output
    ]


def _said(s: StepRecord) -> str:
    """What a step has to say: its error, why it waits or was skipped, or its output."""
    return s.error or s.skip_reason or _text(s.output)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def short_line(line: str, n: int) -> str:
    """One line cut to `n` characters (tabs as spaces), with an ellipsis when cut."""
    line = line.expandtabs(4).rstrip()
    return line if len(line) <= n else line[: n - 1] + "…"


def short(value: Any, n: int = 80) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def secs(s: float) -> str:
    """A duration for people: 42s, 1.5s, 3.2ms."""
    return f"{s:.3g}s" if s >= 1 or s == 0 else f"{s * 1000:.3g}ms"


def _shown(run: RunRecord, sid: str) -> Any:
    """What a step's output shows: a swarm's result (its record is printed in its section)."""
    output = run.steps[sid].output
    if isinstance(output, dict) and "result" in output and sid in swarm_steps(run):
        return output["result"]
    return output


def print_plan(plan: Plan, source: dict[str, str], summary: dict[str, Any] | None) -> None:
    """The plan, where each estimate comes from, and the workflow's history."""
    out.print(f"[bold]{plan.name}[/bold]: mode {plan.mode.value} ({plan.mode_reason})")
    for i, group in enumerate(plan.groups, 1):
        out.print(f"  group {i}: {', '.join(group)}")
    for s in plan.steps.values():
        think = f", thinking {s.thinking.mode.value} ({s.thinking.reason})" if s.thinking else ""
        grows = s.shape and s.shape.startswith(("loop", "child", *(m.value for m in Topology)))
        kind = s.shape if s.shape and grows else s.executor.value
        kind += f" {s.shape}" if s.shape and s.shape.startswith("for each") else ""
        out.print(f"  {s.id}: {kind}, ~{secs(s.estimate_s)} ({source[s.id]}){think}")
        for name, a in (s.agents or {}).items():
            how = f", thinking {a['thinking']} ({a['thinking_reason']})" if a["thinking"] else ""
            out.print(f"    {name}: {a['executor']} on {a['model']}{how}", markup=False)
        if s.api_params_why is not None:  # what the Messages API gets, and why
            sent = "" if s.api_params is None else json.dumps(s.api_params) + ": "
            out.print(f"    {s.model}: {sent}{s.api_params_why}", markup=False)
    out.print(
        f"critical path: {' -> '.join(plan.critical_path)} (~{secs(plan.critical_path_s)}); "
        f"one by one ~{secs(plan.sequential_s)}; estimated speedup {plan.estimated_speedup:.2f}x"
    )
    for group in plan.alternatives:
        out.print(
            f"alternatives (never all run; one by one counts the longest): {' | '.join(group)}"
        )
    if plan.implicit_edges:
        out.print(
            "implicit dependencies (from templates): "
            + ", ".join(f"{a}->{b}" for a, b in plan.implicit_edges)
        )
    if summary is None:
        out.print("history: no finished runs of this workflow yet")
    else:
        outcomes = ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items())
        median = summary["median_run_s"]
        out.print(
            f"history: {summary['runs']} runs ({outcomes}); success rate "
            f"{summary['success_rate']:.0%}; median run "
            + ("-" if median is None else secs(median))
        )
        for sid, n in summary.get("step_failures", {}).items():
            out.print(f"  {sid} failed in {n} of them")
        for sid, n in summary.get("step_retries", {}).items():
            out.print(f"  {sid} needed more than one attempt in {n} of them")
        for sid, d in summary.get("decisions", {}).items():
            errors = f", {d['errors']} not evaluable" if d.get("errors") else ""
            out.print(f"  {sid} when {d['when']}: true {d['true']}, false {d['false']}{errors}")
    out.print("\n```mermaid\n" + plan.mermaid + "\n```")
