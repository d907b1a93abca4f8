"""Planning: mode, critical path, parallel groups, estimated speedup, thinking per step,
and the graph as Mermaid. Pure functions over a validated `Workflow`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tutti_mcp.engine.blocks import Branch
from tutti_mcp.engine.branches import alternatives, worst_case_s
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.modes.auto import choose_mode
from tutti_mcp.engine.modes.swarm.spec import swarm_phases, swarm_shape, swarm_turns
from tutti_mcp.engine.spec import MODEL_KINDS, ExecutorKind, Mode, Step, ThinkingMode
from tutti_mcp.engine.templating import unwrap_condition
from tutti_mcp.engine.thinking import (
    MAX_TOKENS,
    ThinkingChoice,
    ThinkingError,
    choose,
    thinking_params,
)
from tutti_mcp.engine.workflow import Workflow
from tutti_mcp.memory.runs.history import WorkflowHistory

# Rough defaults, used only when neither the step (`estimate_s`) nor history says more.
DEFAULT_ESTIMATE_S = {
    ExecutorKind.BUILTIN: 0.01,
    ExecutorKind.SHELL: 1.0,
    ExecutorKind.CLIENT: 60.0,
}
MODEL_ESTIMATE_S = {
    ThinkingMode.INSTANT: 5.0,
    ThinkingMode.STANDARD: 20.0,
    ThinkingMode.EXTENDED: 60.0,
}


class EstimateSource(StrEnum):
    SPEC = "spec"  # the step's `estimate_s`
    HISTORY = "history"  # measured in earlier runs of the workflow
    DEFAULT = "default"  # by executor and thinking mode


@dataclass(frozen=True)
class StepPlan:
    id: str
    executor: ExecutorKind
    depends_on: tuple[str, ...]
    estimate_s: float
    thinking: ThinkingChoice | None  # for steps that run on a model
    model: str | None
    priority: float  # longest estimated path from this step to the end, itself included
    estimate_from: EstimateSource = EstimateSource.DEFAULT
    # What the Messages API gets for thinking (max_tokens, thinking, output_config) and why;
    # None with the reason when no setting fits (preflight then refuses the run).
    api_params: dict[str, Any] | None = None
    api_params_why: str | None = None
    # a step that grows at run time: "for each item", "loop of draft, critique (≤ 4 times)"
    shape: str | None = None
    # a swarm's agents: where each runs, on which model, with which thinking
    agents: dict[str, dict[str, Any]] | None = None


def step_shape(step: Step) -> str | None:
    if step.swarm is not None:
        return swarm_shape(step.swarm)
    if step.workflow is not None:
        child = step.workflow
        what = child if isinstance(child, str) else f"{child.name} ({len(child.steps)} steps)"
        each = " for each item" if step.foreach is not None else ""
        return f"child workflow {what}{each}"
    if step.loop is not None:
        inner = ", ".join(t.id for t in step.loop.steps)
        return f"loop of {inner} (at most {step.loop.max_iterations} iterations)"
    if step.foreach is not None:
        items = step.foreach.items
        return f"for each of {len(items)} items" if isinstance(items, list) else "for each item"
    return None


@dataclass(frozen=True)
class Plan:
    name: str
    mode: Mode
    mode_reason: str
    steps: dict[str, StepPlan]
    groups: list[list[str]]  # steps that can run together (topological generations)
    critical_path: list[str]
    critical_path_s: float
    # one by one: the steps that can run together in one run, so of branches that exclude
    # each other (`alternatives`, see engine.branches) only the longest combination counts
    sequential_s: float
    estimated_s: float
    estimated_speedup: float
    implicit_edges: list[tuple[str, str]]
    mermaid: str
    alternatives: list[list[str]] = field(default_factory=list)  # conditions that exclude

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode.value,
            "mode_reason": self.mode_reason,
            "groups": self.groups,
            "critical_path": self.critical_path,
            "critical_path_s": round(self.critical_path_s, 3),
            "sequential_s": round(self.sequential_s, 3),
            "estimated_s": round(self.estimated_s, 3),
            "estimated_speedup": round(self.estimated_speedup, 2),
            "implicit_edges": [list(e) for e in self.implicit_edges],
            "alternatives": self.alternatives,
            "steps": {
                s.id: {
                    "executor": s.executor.value,
                    "depends_on": list(s.depends_on),
                    "estimate_s": s.estimate_s,
                    "model": s.model,
                    "thinking": s.thinking.mode.value if s.thinking else None,
                    "thinking_reason": s.thinking.reason if s.thinking else None,
                    "api_params": s.api_params,
                    "api_params_why": s.api_params_why,
                    "shape": s.shape,
                    **({"agents": s.agents} if s.agents is not None else {}),
                }
                for s in self.steps.values()
            },
            "mermaid": self.mermaid,
        }


def _agent(p: StepPlan) -> dict[str, Any]:
    return {
        "executor": p.executor.value,
        "model": p.model,
        "thinking": p.thinking.mode.value if p.thinking else None,
        "thinking_reason": p.thinking.reason if p.thinking else None,
        "api_params": p.api_params,
    }


def estimate_source(step: StepPlan, history: WorkflowHistory) -> str:
    """Where a step's estimate comes from: spec, default, or history of N runs."""
    if step.estimate_from is EstimateSource.HISTORY:
        n = history.steps[step.id].measured
        return f"history: median of {n} run{'s' if n != 1 else ''}"
    return step.estimate_from.value


def _mermaid(wf: Workflow, critical: set[str], kinds: Mapping[str, ExecutorKind]) -> str:
    lines = ["flowchart TD"]
    for sid in wf.order:
        if sid not in wf.conditions:  # steps inside if blocks are drawn in their block
            lines += _mermaid_node(wf, sid, kinds, "  ")
    for sid in wf.order:
        for d in wf.deps[sid]:
            arrow = "-.->" if (d, sid) in wf.implicit else "-->"
            lines.append(f"  {d} {arrow} {sid}")
    for f, p in wf.fallback_of.items():
        lines.append(f"  {p} -. on failure .-> {f}")
    if critical:
        lines.append("  classDef critical stroke-width:3px")
        lines.append(f"  class {','.join(s for s in wf.order if s in critical)} critical")
    return "\n".join(lines)


def _mermaid_node(
    wf: Workflow, sid: str, kinds: Mapping[str, ExecutorKind], indent: str
) -> list[str]:
    """A step's node; an if block as a subgraph of its branches with its own step at the end
    (steps in a block are decisions only when they have a `when` of their own)."""
    block = wf.blocks.get(sid)
    if block is None:
        guarded = wf.conditions.get(sid)
        decision = guarded.own if guarded is not None else wf.steps[sid].when
        label = f"{sid}<br/>{kinds[sid].value}"
        step = wf.steps[sid]
        if step.loop is not None:
            inner = " → ".join(t.id for t in step.loop.steps)
            label = f"{sid}<br/>loop: {inner}<br/>≤ {step.loop.max_iterations} iterations"
        if step.swarm is not None:
            label = (
                f"{sid}<br/>{step.swarm.topology.value} swarm<br/>{len(step.swarm.agents)} agents"
            )
        if step.foreach is not None:  # one node for all its instances
            items = step.foreach.items
            label += f"<br/>× {len(items)}" if isinstance(items, list) else "<br/>for each item"
        return [indent + (f'{sid}{{"{label}"}}' if decision else f'{sid}["{label}"]')]
    condition = _text(unwrap_condition(block.condition))
    lines = [f'{indent}subgraph {_subgraph_id(wf, sid, "if")} ["{sid}: if {condition}"]']
    for which in Branch:
        if block.branch(which):
            lines.append(
                f'{indent}  subgraph {_subgraph_id(wf, sid, which.value)} ["{which.value}"]'
            )
            for m in block.branch(which):
                lines += _mermaid_node(wf, m, kinds, indent + "    ")
            lines.append(f"{indent}  end")
    lines += [f'{indent}  {sid}(["{sid}<br/>end if"])', f"{indent}end"]
    return lines


def _subgraph_id(wf: Workflow, block: str, part: str) -> str:
    """An id for a block's subgraph that no step has (subgraphs and nodes share ids)."""
    name = f"{block}__{part}"
    while name in wf.steps:
        name += "_"
    return name


def _text(text: str) -> str:
    """Text for a quoted Mermaid label: `#`, quotes and angle brackets as entity codes."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def make_plan(
    wf: Workflow,
    models: ModelTable | None = None,
    history_s: Mapping[str, float] | None = None,
) -> Plan:
    """Plan a validated workflow. `history_s` gives measured durations from earlier runs;
    `models` describes what each model accepts (the workflow names the models)."""
    models = models or ModelTable()
    spec = wf.spec
    kinds = wf.executors
    history_s = history_s or {}
    est: dict[str, float] = {}
    agents: dict[str, dict[str, dict[str, Any]]] = {}
    source: dict[str, EstimateSource] = {}
    thinking: dict[str, ThinkingChoice | None] = {}
    model_names: dict[str, str | None] = {}
    params: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
    for sid in wf.order:
        step = wf.steps[sid]
        kind = step.executor
        choice = None
        model_name = None
        params[sid] = (None, None)
        if kind in MODEL_KINDS and step.swarm is None:  # a swarm's agents have their own
            choice = choose(step, spec, wf.upstream_refs.get(sid, 0))
            model = models.resolve(wf.model_ids[sid])
            model_name = model.id
            try:
                chosen = thinking_params(choice.mode, model, step.max_tokens)
                params[sid] = (chosen.params, chosen.why)
            except ThinkingError as exc:
                params[sid] = (None, str(exc))
        thinking[sid] = choice
        model_names[sid] = model_name
        source[sid] = EstimateSource.DEFAULT
        if step.estimate_s is not None:
            est[sid], source[sid] = step.estimate_s, EstimateSource.SPEC
        elif sid in history_s:
            est[sid], source[sid] = history_s[sid], EstimateSource.HISTORY
        elif choice is not None and kind is not ExecutorKind.CLIENT:
            est[sid] = MODEL_ESTIMATE_S[choice.mode]
        elif step.swarm is not None:  # its phases, one after the other
            body = make_plan(wf.bodies[sid], models)
            turn = max(p.estimate_s for n, p in body.steps.items() if n in step.swarm.agents)
            est[sid] = swarm_phases(step.swarm) * turn
            agents[sid] = {n: _agent(body.steps[n]) for n in step.swarm.agents}
        elif sid in wf.bodies:  # at least one iteration of its steps
            est[sid] = make_plan(wf.bodies[sid], models).critical_path_s
        elif sid in wf.children:  # its child's critical path
            est[sid] = make_plan(wf.children[sid], models).critical_path_s
        else:
            est[sid] = DEFAULT_ESTIMATE_S.get(kind, 1.0)

    # Longest path to the end from each step (its priority) and the critical path itself.
    # Fallback steps run only when their primary fails, so they are not on normal paths.
    fallbacks = wf.fallback_of
    tail: dict[str, float] = {}
    nxt: dict[str, str | None] = {}
    for sid in reversed(wf.order):
        best, best_child = 0.0, None
        for c in wf.dependents[sid]:
            # a child with a zero estimate (measured at a coarse clock) is still on the path
            if c not in fallbacks and (best_child is None or tail[c] > best):
                best, best_child = tail[c], c
        tail[sid] = est[sid] + best
        nxt[sid] = best_child
    runnable = [s for s in wf.order if s not in fallbacks]
    roots = [s for s in runnable if not wf.deps[s]]
    start = max(roots, key=lambda s: tail[s], default=None)
    critical: list[str] = []
    while start is not None:
        critical.append(start)
        start = nxt[start]
    crit_s = sum(est[s] for s in critical)
    branches = alternatives(wf)
    seq_s = worst_case_s(wf, runnable, est, branches)
    parallel = spec.optimization.parallel_where_possible
    cap = spec.max_concurrency if parallel else 1
    est_s = max(crit_s, seq_s / cap) if parallel else seq_s
    level: dict[str, int] = {}  # topological generation: 1 + the deepest dependency's
    groups: list[list[str]] = []
    for sid in runnable:
        n = max((level[d] + 1 for d in wf.deps[sid]), default=0)
        level[sid] = n
        if n == len(groups):
            groups.append([])
        groups[n].append(sid)
    mode, reason = choose_mode(wf)
    steps = {
        sid: StepPlan(
            id=sid,
            executor=kinds[sid],
            depends_on=wf.deps[sid],
            estimate_s=est[sid],
            thinking=thinking[sid],
            model=model_names[sid],
            priority=tail[sid],
            estimate_from=source[sid],
            api_params=params[sid][0],
            api_params_why=params[sid][1],
            shape=step_shape(wf.steps[sid]),
            agents=agents.get(sid),
        )
        for sid in wf.order
    }
    return Plan(
        name=spec.name,
        mode=mode,
        mode_reason=reason,
        steps=steps,
        groups=groups,
        critical_path=critical,
        critical_path_s=crit_s,
        sequential_s=seq_s,
        estimated_s=est_s,
        estimated_speedup=(seq_s / est_s) if est_s > 0 else 1.0,
        implicit_edges=sorted(wf.implicit),
        mermaid=_mermaid(wf, set(critical), kinds),
        alternatives=branches,
    )


# Typical output tokens (thinking included) per thinking mode, for the low cost estimate;
# the high estimate takes every call to its max_tokens.
TYPICAL_OUTPUT = {
    ThinkingMode.INSTANT: 400,
    ThinkingMode.STANDARD: 2_000,
    ThinkingMode.EXTENDED: 8_000,
}
_UPSTREAM_TOKENS = 1_000  # assumed size of one upstream output a prompt reads


def estimate_cost(wf: Workflow, plan: Plan, models: ModelTable) -> dict[str, Any]:
    """A cost range for the steps that run on the Anthropic API: the
    prompt's size plus upstream outputs in, typical to max_tokens out, at table prices.
    Steps on the client's own model (client, sampling) cost nothing here."""
    steps: dict[str, Any] = {}
    low = high = 0.0
    unpriced: list[str] = []
    for sid, sp in plan.steps.items():
        step = wf.steps[sid]
        if step.swarm is not None and wf.executors[sid] is ExecutorKind.PROMPT:
            body = wf.bodies[sid]
            inner = estimate_cost(body, make_plan(body, models), models)
            turns = swarm_turns(step.swarm)
            priced = {n: c for n, c in inner["steps"].items() if n in turns}
            s_lo = sum(turns[n][0] * c["usd_low"] for n, c in priced.items())
            s_hi = sum(turns[n][1] * c["usd_high"] for n, c in priced.items())
            unpriced += [f"{sid}.{n}" for n in inner["unpriced_models"] if n in turns]
            low, high = low + s_lo, high + s_hi
            steps[sid] = {"usd_low": round(s_lo, 4), "usd_high": round(s_hi, 4), "agents": priced}
            continue
        if sp.thinking is None or wf.executors[sid] is not ExecutorKind.PROMPT:
            continue
        model = models.resolve(sp.model)
        text = " ".join(t for t in (step.prompt, step.args, step.system) if t)
        tokens_in = 300 + len(text) // 4 + _UPSTREAM_TOKENS * wf.upstream_refs.get(sid, 0)
        mode = sp.thinking.mode
        cap = (sp.api_params or {}).get("max_tokens") or step.max_tokens or MAX_TOKENS[mode]
        typical = min(cap, TYPICAL_OUTPUT.get(mode, 2_000))
        lo = model.cost_usd({"input_tokens": tokens_in, "output_tokens": typical})
        hi = model.cost_usd({"input_tokens": tokens_in, "output_tokens": cap})
        if lo is None or hi is None:
            unpriced.append(sid)
            continue
        low, high = low + lo, high + hi
        steps[sid] = {"model": model.id, "input_tokens": tokens_in, "usd_low": lo, "usd_high": hi}
    return {
        "usd_low": round(low, 4),
        "usd_high": round(high, 4),
        "steps": steps,
        "unpriced_models": unpriced,
        "basis": "API steps only: prompt size + ~1000 tokens per upstream output in; "
        "typical output (by thinking mode) to max_tokens out; a swarm's agents by their "
        "expected turns (engine.modes.swarm.spec.swarm_turns)",
    }
