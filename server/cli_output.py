"""How the command line shows runs and plans to people (and, with --json, to programs)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from tutti_mcp.engine.plan import Plan
from tutti_mcp.engine.report import gantt, recovery_plan
from tutti_mcp.memory.records import RunRecord, RunStatus

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def run_json(run: RunRecord) -> dict[str, Any]:
    """The `--json` shape: one object with the run, its steps, outputs and metrics."""
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
                **({"detail": s.detail} if s.detail else {}),
            }
            for s in run.steps.values()
        },
        "metrics": run.metrics,
        "recovery": recovery_plan(run),
    }


def print_run(run: RunRecord, *, with_gantt: bool = False) -> None:
    table = Table(title=f"{run.name}  {run.id}  [{run.status.value}]", title_justify="left")
    for col in ("step", "status", "attempts", "seconds", "output / error"):
        table.add_column(col, overflow="fold")
    for s in run.steps.values():
        text = s.error or (s.detail or {}).get("reason") or short(s.output)
        secs = "" if s.duration_s is None else f"{s.duration_s:.3f}"
        table.add_row(s.step_id, s.status.value, str(s.attempts), secs, text)
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
    if m.get("partial"):
        handled = [
            s.step_id for s in run.steps.values() if s.status.value in ("failed", "degraded")
        ]
        out.print(
            f"succeeded in part: {', '.join(handled)} failed and their failure policy applied"
        )
    if run.error:
        out.print(f"[bold]error:[/bold] {run.error}")
    plan = recovery_plan(run)
    if plan and run.status is not RunStatus.WAITING:
        r = plan["resume"]
        out.print(
            f"resume keeps {len(r['keeps_committed'])} committed steps, re-runs "
            f"{', '.join(r['reruns']) or 'none'}, then runs {len(r['then_runs'])} more: {plan['command']}"
        )
    if run.status is RunStatus.WAITING:
        for s in run.steps.values():
            if s.status.value == "waiting":
                instr = (s.detail or {}).get("instructions", "")
                out.print(f"waiting for you: [bold]{s.step_id}[/bold]: {short(instr, 200)}")
                out.print(
                    f"  when done: tutti complete {run.id} {s.step_id} --output TEXT --resume"
                )
    if with_gantt:
        out.print("\n```mermaid\n" + gantt(run) + "\n```")
    elif run.status is RunStatus.SUCCEEDED:
        # the final outputs in full: those of the steps nothing else depends on
        spec_steps = run.spec.get("steps", [])
        needed = {d for st in spec_steps for d in st.get("depends_on", [])}
        needed |= {st["fallback"] for st in spec_steps if st.get("fallback")}
        for s in run.steps.values():
            if s.status.has_output and s.step_id not in needed and isinstance(s.output, str):
                out.print(f"\n[bold]{s.step_id}[/bold]:\n{s.output}")


def short(value: Any, n: int = 80) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def secs(s: float) -> str:
    """A duration for people: 42s, 1.5s, 3.2ms."""
    return f"{s:.3g}s" if s >= 1 or s == 0 else f"{s * 1000:.3g}ms"


def print_plan(plan: Plan, source: dict[str, str], summary: dict[str, Any] | None) -> None:
    """The plan, where each estimate comes from, and the workflow's history."""
    out.print(f"[bold]{plan.name}[/bold]: mode {plan.mode.value} ({plan.mode_reason})")
    for i, group in enumerate(plan.groups, 1):
        out.print(f"  group {i}: {', '.join(group)}")
    for s in plan.steps.values():
        think = f", thinking {s.thinking.mode.value} ({s.thinking.reason})" if s.thinking else ""
        out.print(f"  {s.id}: {s.executor.value}, ~{secs(s.estimate_s)} ({source[s.id]}){think}")
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
