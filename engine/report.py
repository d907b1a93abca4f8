"""What a run achieved: metrics (speedup, critical path, tokens, cost), the recovery plan of
an unfinished run, and a Mermaid Gantt chart. Pure functions over stored records."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tutti_mcp.engine.modes.swarm.report import swarm_sections
from tutti_mcp.engine.usage import TOKEN_KEYS, cache_share, step_spent
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.records import RunRecord, RunStatus, StepRecord, StepStatus

_USAGE_KEYS = TOKEN_KEYS


def _actual_critical_path(run: RunRecord, wf: Workflow) -> tuple[list[str], float]:
    """Longest chain of dependencies by measured duration."""
    best: dict[str, tuple[float, str | None]] = {}
    for sid in wf.order:
        d = run.steps[sid].duration_s or 0.0
        prev = max(((best[p][0], p) for p in wf.deps[sid] if p in best), default=(0.0, None))
        best[sid] = (prev[0] + d, prev[1])
    if not best:
        return [], 0.0
    end = max(best, key=lambda s: best[s][0])
    total = best[end][0]
    path: list[str] = []
    cur: str | None = end
    while cur is not None:
        path.append(cur)
        cur = best[cur][1]
    return path[::-1], total


@dataclass(frozen=True, slots=True)
class Segments:
    """A run's execution segments so far. A segment is one process's execution of the run,
    from its start (or resume) until it came to rest: finished, waiting for the client
    (detached), interrupted. Kept in the run's metrics, so they outlive the process."""

    first_started_at: float  # when the run first started executing
    count: int
    active_s: float  # the segments' durations, summed
    last_started_at: float  # the latest segment's start and end
    last_ended_at: float

    def then(self, started: float, ended: float) -> Segments:
        """These segments and one more."""
        return Segments(
            self.first_started_at,
            self.count + 1,
            self.active_s + max(0.0, ended - started),
            started,
            ended,
        )

    @staticmethod
    def first(started: float, ended: float) -> Segments:
        return Segments(started, 1, max(0.0, ended - started), started, ended)

    def fields(self) -> dict[str, Any]:
        """What the metrics keep of them (see `run_metrics`)."""
        return {
            "wall_s": round(self.last_ended_at - self.first_started_at, 4),
            "active_s": round(self.active_s, 4),
            "segments": self.count,
            "first_started_at": self.first_started_at,
            "segment_started_at": self.last_started_at,
        }


def earlier_segments(run: RunRecord) -> Segments | None:
    """The segments of the run's earlier executions, from what is stored: those its last
    execution to come to rest counted in the metrics, plus one cut off without coming to
    rest (its process was killed). A cut-off segment starts at the run's `started_at`
    (set by each execution as it starts) and is taken to end at the last step time it
    recorded: a lower bound, as what it did after its last record is lost."""
    m = run.metrics or {}
    counted: Segments | None = None
    if isinstance(m.get("first_started_at"), int | float) and isinstance(m.get("segments"), int):
        first = float(m["first_started_at"])
        counted = Segments(
            first,
            m["segments"],
            float(m.get("active_s") or 0.0),
            float(m.get("segment_started_at") or first),
            first + float(m.get("wall_s") or 0.0),
        )
    start = run.started_at
    if start is None or (counted is not None and start == counted.last_started_at):
        return counted
    times = [
        t
        for s in run.steps.values()
        for t in (s.started_at, s.finished_at)
        if t is not None and t >= start
    ]
    end = max(times, default=start)
    return counted.then(start, end) if counted is not None else Segments.first(start, end)


def _busy_s(steps: list[StepRecord]) -> float:
    """How long at least one step was running (or waiting on the client): the union of
    the steps' intervals, which leaves out the gaps between a run's segments."""
    total, end = 0.0, float("-inf")
    for s in sorted(steps, key=lambda s: s.started_at or 0.0):
        start, finish = s.started_at or 0.0, s.finished_at or 0.0
        if finish <= end:
            continue
        total += finish - max(start, end)
        end = finish
    return total


def run_metrics(run: RunRecord, wf: Workflow, segments: Segments | None = None) -> dict[str, Any]:
    """What the run achieved, up to the end of its latest segment.

    - `wall_s`: elapsed time from the run's first start to the end of its latest segment
      (its finish, or the moment it came to rest): every segment, and the time between
      them (waiting for the client, or for someone to resume it).
    - `active_s`: the sum of its `segments`, the time some tutti process was executing it
      (an attached run waiting for client steps is executing).
    - `step_time_s`: the steps' durations summed (a client step's: handed out to
      completed); `busy_s`: the time at least one step was running or waiting on the
      client; `speedup` = step_time_s / busy_s, against running the steps one by one.
    - `span_s`: from the first step's start to the last step's finish.
    """
    steps = run.steps.values()
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.status.value] = counts.get(s.status.value, 0) + 1
    timed = [s for s in steps if s.started_at is not None and s.finished_at is not None]
    step_time = sum(s.duration_s or 0.0 for s in timed)
    span = (max(s.finished_at for s in timed) - min(s.started_at for s in timed)) if timed else 0.0  # type: ignore[type-var,operator]
    busy = _busy_s(timed)
    crit, crit_s = _actual_critical_path(run, wf)
    usage = dict.fromkeys(_USAGE_KEYS, 0)
    cost = 0.0
    cost_known = True
    for s in steps:  # failed attempts count too: their calls consumed tokens
        for part in step_spent(s.usage, s.detail):
            for k in _USAGE_KEYS:
                usage[k] += int(part.get(k) or 0)
            if part.get("cost_usd") is None:
                cost_known = cost_known and "input_tokens" not in part
            else:
                cost += float(part["cost_usd"])
    timing: dict[str, Any] = (
        {"wall_s": None, "active_s": None, "segments": 0} if segments is None else segments.fields()
    )
    return {
        "steps": len(run.steps),
        "status_counts": counts,
        **timing,
        "span_s": round(span, 4),
        "busy_s": round(busy, 4),
        "step_time_s": round(step_time, 4),
        "speedup": round(step_time / busy, 2) if busy > 0 else None,
        "critical_path": crit,
        "critical_path_s": round(crit_s, 4),
        "tokens": usage,
        "cache_share": cache_share(usage),
        "cost_usd": round(cost, 6) if cost_known else None,
        "partial": any(s.status in (StepStatus.DEGRADED, StepStatus.FAILED) for s in steps)
        and run.status is RunStatus.SUCCEEDED,
    }


def recovery_plan(run: RunRecord) -> dict[str, Any] | None:
    """For an unfinished run: what failed and why, and what `resume` would do."""
    if run.status is RunStatus.SUCCEEDED:
        return None
    keep = [s.step_id for s in run.steps.values() if s.status.has_output and s.seq is not None]
    rerun = [
        s.step_id
        for s in run.steps.values()
        if s.status
        in (StepStatus.FAILED, StepStatus.INTERRUPTED, StepStatus.CANCELLED, StepStatus.RUNNING)
    ]
    pending = [s.step_id for s in run.steps.values() if s.status is StepStatus.PENDING]
    waiting = [s.step_id for s in run.steps.values() if s.status is StepStatus.WAITING]
    failures = {
        s.step_id: {
            "error": s.error,
            "attempts": s.attempts,
            "kind": s.failure.get("error_kind"),
            "retryable": s.failure.get("retryable"),
            "hint": _hint(s),
        }
        for s in run.steps.values()
        if s.status is StepStatus.FAILED
    }
    return {
        "failures": failures,
        "resume": {
            "keeps_committed": keep,
            "reruns": rerun,
            "then_runs": pending,
            "waiting_for_client": waiting,
        },
        "command": f"tutti resume {run.id}",
    }


def _hint(s: StepRecord) -> str:
    kind = s.failure.get("error_kind")
    if kind == "timeout":
        return "raise the step's `timeout` or make it do less, then resume"
    if kind == "exit_code":
        return "the command exited non-zero: see stderr in the error, fix the cause, then resume"
    if kind == "policy":
        return "the program is not allowed: add it to TUTTI_ALLOW_SHELL, then resume"
    if kind in ("TemplateError", "parse"):
        return "the step's template or output shape is wrong: fix the spec and start a new run"
    if kind == "api":
        return "the model API refused the call: check the key, model and limits, then resume"
    if kind == "truncated":
        return "raise the step's `max_tokens` (or `on_truncation: accept` for text), then resume"
    if kind == "schema":
        return (
            "the answer did not match `json_schema`: tighten the prompt or the schema, then resume"
        )
    return "fix the cause, then resume; committed steps are not run again"


def _cache_line(tokens: dict[str, Any], share: float | None) -> str:
    read = tokens.get("cache_read_input_tokens", 0)
    written = tokens.get("cache_creation_input_tokens", 0)
    pct = "-" if share is None else f"{share:.0%}"
    return f"{pct} of input served from cache ({read} read, {written} written)"


def gantt(run: RunRecord) -> str:
    timed = sorted(
        (s for s in run.steps.values() if s.started_at is not None and s.finished_at is not None),
        key=lambda s: s.started_at or 0.0,
    )
    lines = ["gantt", f"  title {run.name} ({run.id})", "  dateFormat x", "  axisFormat %M:%S"]
    for i, s in enumerate(timed):
        tag = {"failed": "crit, ", "degraded": "active, "}.get(s.status.value, "")
        start = int((s.started_at or 0) * 1000)
        end = max(start + 1, int((s.finished_at or 0) * 1000))
        # a task's name ends at its colon, and its id is a plain word: an added step's id
        # (`swarm[ann:draft#2]`, `review[3]`) is neither
        name = s.step_id.replace(":", " ").replace("#", " ")
        task = s.step_id if s.step_id.isidentifier() else f"t{i}"
        lines.append(f"  {name} :{tag}{task}, {start}, {end}")
    return "\n".join(lines)


def age(ts: float | None) -> str:
    if ts is None:
        return "-"
    d = time.time() - ts
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= size:
            return f"{d / size:.0f}{unit} ago"
    return f"{d:.0f}s ago"


def markdown_report(run: RunRecord) -> str:
    """The run as a Markdown report: steps, critical path, speedup, tokens and cost, Gantt."""
    m = run.metrics or {}
    lines = [f"# {run.name} `{run.id}`: {run.status.value}", ""]
    if run.error:
        lines += [f"**Error:** {run.error}", ""]
    if run.parent_run_id and run.id.startswith(run.parent_run_id + "."):
        step = run.id[len(run.parent_run_id) + 1 :]
        lines += [f"Child run of step `{step}` of `{run.parent_run_id}`.", ""]
    elif run.parent_run_id:
        lines += [f"Forked from `{run.parent_run_id}`.", ""]
    lines += [
        "| step | status | attempts | seconds | executor | note |",
        "|---|---|---|---|---|---|",
    ]
    for s in run.steps.values():
        secs = "" if s.duration_s is None else f"{s.duration_s:.3f}"
        note = (s.error or s.skip_reason or "").replace("|", "\\|")
        note = note.replace("\n", " ")[:120]
        lines.append(
            f"| {s.step_id} | {s.status.value} | {s.attempts} | {secs} | {s.executor or ''} | {note} |"
        )
    if m:
        tokens = m.get("tokens") or {}
        cost = m.get("cost_usd")
        lines += [
            "",
            f"- Critical path: {' -> '.join(m.get('critical_path') or []) or '-'} "
            f"({m.get('critical_path_s', 0):.3f} s)",
            f"- Achieved speedup: {m.get('speedup') or 1.0}x "
            f"({m.get('step_time_s', 0):.3f} s of step time over {m.get('busy_s', 0):.3f} s "
            "with steps running)",
            f"- Time: {m.get('wall_s') or 0:.3f} s from the first start, "
            f"{m.get('active_s') or 0:.3f} s executing in {m.get('segments', 0)} segment(s)",
            f"- Tokens: {tokens.get('input_tokens', 0)} in, {tokens.get('output_tokens', 0)} out"
            f" (thinking {tokens.get('thinking_tokens', 0)})",
            f"- Prompt cache: {_cache_line(tokens, m.get('cache_share'))}",
            f"- Cost: {'unknown' if cost is None else f'${cost:.4f}'}",
        ]
    lines += swarm_sections(run)
    chart = gantt(run)
    if chart.count("\n") > 3:
        lines += ["", "```mermaid", chart, "```"]
    recovery = recovery_plan(run)
    if recovery and recovery["failures"]:
        lines += ["", "## Failures"]
        for sid, f in recovery["failures"].items():
            lines.append(f"- `{sid}`: {f['error']} ({f['hint']})")
    return "\n".join(lines) + "\n"
