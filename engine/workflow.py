"""Semantic validation: a spec becomes a `Workflow` (its dependency graph) or a SpecError
that names each problem: duplicate ids, unknown references, cycles, unknown commands.

A template that reads another step's output makes that step a dependency even when
`depends_on` leaves it out; the plan lists such implicit edges.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from tutti_mcp.engine.blocks import Block, Flat, StepCondition, attach, flatten
from tutti_mcp.engine.errors import Problem, SpecError, TemplateError
from tutti_mcp.engine.gate_spec import reject_target
from tutti_mcp.engine.graph_checks import cycle_problems, fallback_problems, reject_problems
from tutti_mcp.engine.groups import item_ref_problems, loop_ref_problems, outputs_ref_problems
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.modes.pipeline.checks import pipeline_problems, pipeline_ref_problems
from tutti_mcp.engine.modes.swarm.compile import body_spec
from tutti_mcp.engine.modes.swarm.turns import turn_fields
from tutti_mcp.engine.nested import child_workflow, loop_body
from tutti_mcp.engine.spec import (
    MODEL_KINDS,
    BuiltinOp,
    ExecutorKind,
    Mode,
    Step,
    WorkflowSpec,
)
from tutti_mcp.engine.spec_foreach import ITEM_NAMES
from tutti_mcp.engine.templating import STEP_FIELDS, Reference, references, unwrap_condition

if TYPE_CHECKING:
    import networkx as nx

# a spec of a mode with a step kind of its own names it: the mode's step, or what to give
WITHOUT_ITS_STEP = {
    Mode.SWARM: (
        "swarm",
        "a swarm needs agents: give `agents` (and `topology`) at the top of the spec instead "
        "of `steps`, or make one of the steps a swarm (`swarm: {agents: ...}`)",
    ),
    Mode.PIPELINE: (
        "pipeline",
        "a pipeline needs a source and stages: give `source` and `stages` at the top of the "
        "spec instead of `steps`, or make one of the steps a pipeline (`pipeline: {...}`)",
    ),
}


@dataclass
class Workflow:
    """A validated spec with its dependency graph, and where each step runs and on which
    model: decided once, here, and read by the plan, the cost estimate, the preflight
    checks and the runner alike."""

    spec: WorkflowSpec
    steps: dict[str, Step]  # every step, those of if blocks included (engine.blocks)
    deps: dict[str, tuple[str, ...]]  # explicit and implicit, in spec order
    dependents: dict[str, tuple[str, ...]]
    order: list[str]  # a topological order
    implicit: set[tuple[str, str]] = field(default_factory=set)  # (dependency, step)
    fallback_of: dict[str, str] = field(default_factory=dict)  # fallback step -> primary
    upstream_refs: dict[str, int] = field(default_factory=dict)  # step -> steps it reads
    input_refs: dict[str, frozenset[str]] = field(default_factory=dict)  # step -> inputs it reads
    executors: dict[str, ExecutorKind] = field(default_factory=dict)  # step -> what runs it
    model_ids: dict[str, str] = field(default_factory=dict)  # model step -> model id
    # steps that grow into steps added at run time (`foreach`, `loop`)
    groups: frozenset[str] = frozenset()
    bodies: dict[str, Workflow] = field(default_factory=dict)  # loop step -> its steps
    children: dict[str, Workflow] = field(default_factory=dict)  # workflow step -> inline child
    outer_refs: frozenset[str] = frozenset()  # a loop body's: the workflow's steps it reads

    def live(self) -> Workflow:
        """A copy one run may grow (steps added at run time), sharing what never changes;
        the compiled workflow itself is shared by runs and never changed."""
        return replace(
            self,
            steps=dict(self.steps),
            deps=dict(self.deps),
            dependents=dict(self.dependents),
            order=list(self.order),
            executors=dict(self.executors),
            model_ids=dict(self.model_ids),
            conditions=dict(self.conditions),
        )

    # on_reject steps of approval gates: they wait on their gate, and run only if it is
    # rejected (engine/core.py)
    reject_of: dict[str, str] = field(default_factory=dict)  # on_reject step -> its gate
    reject_to: dict[str, str] = field(default_factory=dict)  # gate -> its on_reject step
    blocks: dict[str, Block] = field(default_factory=dict)  # if blocks, by id
    conditions: dict[str, StepCondition] = field(default_factory=dict)  # steps inside blocks

    def definition(self, sid: str, parent: str | None, scope: Mapping[str, Any] | None) -> Step:
        """The step definition behind step `sid`, one added at run time included (a foreach
        instance is its step's; a loop iteration's step is the loop's step of that name)."""
        if parent is None:
            return self.steps[sid]
        body = self.bodies.get(parent)
        if body is not None and scope and "slot" in scope:  # a swarm agent's turn
            return body.steps[scope["agent"]].model_copy(update={"id": sid, **turn_fields(scope)})
        return body.steps[scope["step"]] if body is not None and scope else self.steps[parent]

    def on(self, kind: ExecutorKind) -> list[str]:
        """The steps that run on `kind`, in order."""
        return [sid for sid in self.order if self.executors[sid] is kind]

    @property
    def graph(self) -> nx.DiGraph:
        import networkx as nx  # imported when needed: it is slow to import

        g = nx.DiGraph()
        g.add_nodes_from(self.order)
        g.add_edges_from((d, s) for s in self.order for d in self.deps[s])
        g.add_edges_from((p, f) for f, p in self.fallback_of.items())
        return g


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(known)}" if known else ""


def _check_ref(
    ref: Reference, where: str, spec: WorkflowSpec, ids: list[str], problems: list[Problem]
) -> str | None:
    """Report a bad reference; return the step id it reads, if any."""
    if ref.name == "inputs":
        if ref.attr is None:
            problems.append(Problem(where, "use ${inputs.NAME}, not ${inputs} alone"))
        elif ref.attr not in spec.inputs:
            problems.append(
                Problem(
                    where,
                    f"unknown input {ref.attr!r}"
                    + (_suggest(ref.attr, list(spec.inputs)) if spec.inputs else "")
                    + f" (declare it under `inputs:` to use ${{inputs.{ref.attr}}})",
                )
            )
        return None
    if ref.name not in ids:
        problems.append(
            Problem(
                where, f"unknown step or name {ref.name!r} in template{_suggest(ref.name, ids)}"
            )
        )
        return None
    if ref.attr not in STEP_FIELDS:
        shown = f"${{{ref}}}"
        problems.append(
            Problem(
                where,
                f"{shown} reads no step field; use ${{{ref.name}.output}} "
                f"(fields: {', '.join(STEP_FIELDS)})",
            )
        )
    return ref.name


def _step_problems(step: Step, where: str) -> list[Problem]:
    kind = step.executor
    out: list[Problem] = []
    if kind is ExecutorKind.SHELL and not step.shell_argv:
        out.append(Problem(where, "a shell step needs `argv` or `args` naming the program to run"))
    if kind in MODEL_KINDS and not (step.prompt or step.args or step.swarm):
        out.append(Problem(where, f"a {kind.value} step needs `prompt` or `args`"))
    if kind is ExecutorKind.BUILTIN and step.builtin_op is BuiltinOp.JSON and step.value is None:
        out.append(Problem(where, "builtin op 'json' needs `value`"))
    return out


def resolved_executor(step: Step, spec: WorkflowSpec, model_executor: ExecutorKind) -> ExecutorKind:
    """Where a step runs: its `run`, else, for a model step, the spec's
    `defaults.model_executor` or `model_executor` (the engine's); else by its fields."""
    if step.run is not None:
        return step.run
    if step.executor is ExecutorKind.PROMPT:
        return spec.defaults.model_executor or model_executor
    return step.executor


def compile_workflow(
    spec: WorkflowSpec,
    *,
    model_executor: ExecutorKind = ExecutorKind.PROMPT,
    models: ModelTable | None = None,
    outer: Mapping[str, Step | None] | None = None,
) -> Workflow:
    """Validate a spec as a whole and build its graph; raise SpecError listing every problem.
    Model steps without a `run` go to `model_executor`; model names resolve through
    `models` (aliases to ids). `outer`: names a loop's steps may read beyond their own (the
    workflow's other steps, and `loop`); what they read of those is `outer_refs`."""
    problems: list[Problem] = []
    outer = outer or {}
    outer_read: set[str] = set()
    bodies: dict[str, Workflow] = {}
    children: dict[str, Workflow] = {}
    how: dict[str, Any] = {"model_executor": model_executor, "models": models}
    kind = WITHOUT_ITS_STEP.get(spec.type)
    if kind is not None and not any(getattr(s, kind[0]) is not None for s in spec.steps):
        problems.append(Problem("type", kind[1]))
    flat = flatten(spec)
    problems += flat.problems
    ids = [s.id for s in flat.steps]
    steps: dict[str, Step] = {}
    for i, s in enumerate(flat.steps):
        if s.id in steps:
            first = flat.bare(ids.index(s.id))
            problems.append(
                Problem(f"{flat.bare(i)}.id", f"duplicate step id {s.id!r} (also {first})")
            )
        steps.setdefault(s.id, s)
    deps: dict[str, list[str]] = {sid: [] for sid in steps}
    implicit: set[tuple[str, str]] = set()
    upstream: dict[str, int] = {}
    input_refs: dict[str, frozenset[str]] = {}
    fallback_of: dict[str, str] = {}
    reject_of: dict[str, str] = {}
    for i, s in enumerate(flat.steps):
        where = flat.where(i)
        problems += _step_problems(s, where)
        if s.pipeline is not None:
            problems += pipeline_problems(s.pipeline, where, ids)
        for j, d in enumerate(s.depends_on):
            if d == s.id:
                problems.append(
                    Problem(f"{where}.depends_on[{j}]", "a step cannot depend on itself")
                )
            elif d not in steps and d in outer and d != "loop":
                outer_read.add(d)
            elif d not in steps:
                problems.append(
                    Problem(f"{where}.depends_on[{j}]", f"unknown step {d!r}{_suggest(d, ids)}")
                )
            elif d not in deps[s.id]:
                deps[s.id].append(d)
        read: set[str] = set()
        inputs_read: set[str] = set()
        texts = [(f, t, False) for f, t in s.templated_strings()]
        guarded = flat.conditions.get(s.id)
        when = s.when if guarded is None else guarded.own  # a block's `if`: checked below
        if when is not None:
            texts.append(("when", unwrap_condition(when), True))
        body_ids: frozenset[str] = frozenset()
        if s.workflow is not None:
            child = child_workflow(s, where, partial(compile_workflow, **how), problems)
            if child is not None:
                children[s.id] = child
        if s.swarm is not None:
            bodies[s.id] = _swarm_body(s, spec, **how)
        if s.loop is not None:
            body_ids = frozenset(t.id for t in s.loop.steps)
            body = loop_body(s, where, spec, steps, partial(compile_workflow, **how), problems)
            if body is not None:
                bodies[s.id] = body
                for d in sorted(body.outer_refs, key=ids.index):
                    if d not in deps[s.id]:
                        deps[s.id].append(d)
                        implicit.add((d, s.id))
            texts.append(("loop.until", unwrap_condition(s.loop.until), True))
        for fname, text, is_expr in texts:
            try:
                refs = references(text, expression=is_expr) if is_expr or "${" in text else []
            except TemplateError as exc:
                problems.append(Problem(f"{where}.{fname}", str(exc)))
                continue
            for ref in refs:
                own = pipeline_ref_problems(s.pipeline, ref, fname, f"{where}.{fname}")
                if own is not None:  # a name of the pipeline's own (its item, its stages)
                    problems += own
                    continue
                if ref.name in ITEM_NAMES:
                    problems += item_ref_problems(s, f"{where}.{fname}", fname)
                    continue
                if ref.name == "loop" and ("loop" in outer or fname == "loop.until"):
                    problems += loop_ref_problems(ref, f"{where}.{fname}")
                    continue
                if ref.name in body_ids and fname == "loop.until":  # this iteration's step
                    _check_ref(ref, f"{where}.{fname}", spec, [ref.name], problems)
                    continue
                if ref.name in outer and ref.name not in steps:  # outside the loop
                    target_step = outer[ref.name]
                    if ref.attr == "outputs" and target_step is not None:
                        problems += outputs_ref_problems(target_step, f"{where}.{fname}")
                        ref = Reference(ref.name, "output")
                    _check_ref(ref, f"{where}.{fname}", spec, [ref.name], problems)
                    outer_read.add(ref.name)
                    continue
                if ref.name == "inputs" and ref.attr:
                    inputs_read.add(ref.attr)
                if ref.attr == "outputs" and ref.name in steps:
                    problems += outputs_ref_problems(steps[ref.name], f"{where}.{fname}")
                    ref = Reference(ref.name, "output")
                target = _check_ref(ref, f"{where}.{fname}", spec, ids, problems)
                if target == s.id:
                    problems.append(
                        Problem(f"{where}.{fname}", "a step cannot read its own output")
                    )
                elif target is not None:
                    read.add(target)
                    if target not in deps[s.id]:
                        deps[s.id].append(target)
                        implicit.add((target, s.id))
        upstream[s.id] = len(read)
        input_refs[s.id] = frozenset(inputs_read)
        if s.fallback is not None:
            if s.fallback not in steps:
                problems.append(
                    Problem(
                        f"{where}.fallback",
                        f"unknown step {s.fallback!r}{_suggest(s.fallback, ids)}",
                    )
                )
            elif s.fallback == s.id:
                problems.append(Problem(f"{where}.fallback", "a step cannot be its own fallback"))
            elif s.fallback in fallback_of:
                problems.append(
                    Problem(
                        f"{where}.fallback",
                        f"{s.fallback!r} is already the fallback of {fallback_of[s.fallback]!r}",
                    )
                )
            else:
                fallback_of[s.fallback] = s.id
        target = reject_target(s)
        if target is not None:
            if target not in steps:
                problems.append(
                    Problem(f"{where}.on_reject", f"unknown step {target!r}{_suggest(target, ids)}")
                )
            elif target in reject_of:
                problems.append(
                    Problem(
                        f"{where}.on_reject",
                        f"{target!r} is already the on_reject step of gate {reject_of[target]!r}; "
                        "a step runs for one gate's rejection only",
                    )
                )
            else:
                reject_of[target] = s.id
                if s.id not in deps[target]:  # it waits for its gate's answer
                    deps[target].append(s.id)
    if flat.blocks:
        problems += _wire_blocks(spec, flat, ids, deps, implicit, input_refs)

    import networkx as nx  # imported when needed: it is slow to import

    # The graph of the references that are valid: a cycle among them is a problem of its
    # own, reported beside unknown references rather than once they are fixed.
    g = nx.DiGraph()
    g.add_nodes_from(ids)
    g.add_edges_from((d, s) for s, ds in deps.items() for d in ds)
    problems += cycle_problems(g, ids)
    problems += fallback_problems(g, ids, deps, fallback_of)
    problems += reject_problems(g, ids, deps, reject_of, fallback_of)
    if problems:
        raise SpecError(problems)

    position = {sid: i for i, sid in enumerate(ids)}
    order = list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
    dependents: dict[str, list[str]] = {sid: [] for sid in ids}
    for sid in order:
        for d in deps[sid]:
            dependents[d].append(sid)
    table = models or ModelTable()
    return Workflow(
        spec=spec,
        executors={sid: resolved_executor(steps[sid], spec, model_executor) for sid in order},
        model_ids={
            sid: table.model_id(steps[sid].model or spec.defaults.model)
            for sid in order
            if steps[sid].executor in MODEL_KINDS
        },
        steps=steps,
        deps={k: tuple(v) for k, v in deps.items()},
        dependents={k: tuple(v) for k, v in dependents.items()},
        order=order,
        implicit=implicit,
        fallback_of=fallback_of,
        reject_of=reject_of,
        reject_to={gate: target for target, gate in reject_of.items()},
        upstream_refs=upstream,
        input_refs=input_refs,
        groups=frozenset(sid for sid in order if steps[sid].foreach is not None or sid in bodies),
        bodies=bodies,
        children=children,
        outer_refs=frozenset(outer_read),
        blocks=flat.blocks,
        conditions=flat.conditions,
    )


def _swarm_body(
    s: Step, spec: WorkflowSpec, model_executor: ExecutorKind, models: ModelTable | None
) -> Workflow:
    """A swarm's agents as a workflow (engine.modes.swarm.compile): no edges of its own."""
    body = body_spec(s, spec)
    steps = {t.id: t for t in body.steps}
    table = models or ModelTable()
    return Workflow(
        spec=body,
        steps=steps,
        deps=dict.fromkeys(steps, ()),
        dependents=dict.fromkeys(steps, ()),
        order=list(steps),
        executors={n: resolved_executor(t, spec, model_executor) for n, t in steps.items()},
        model_ids={n: table.model_id(t.model or spec.defaults.model) for n, t in steps.items()},
    )


def _wire_blocks(
    spec: WorkflowSpec,
    flat: Flat,
    ids: list[str],
    deps: dict[str, list[str]],
    implicit: set[tuple[str, str]],
    input_refs: dict[str, frozenset[str]],
) -> list[Problem]:
    """Check each block's condition once, where it is written (`steps[2] (check).if`), and
    wire the blocks into the graph (engine.blocks.attach). The steps inside a block read
    its condition: the inputs it reads count as theirs."""
    problems: list[Problem] = []
    reads: dict[str, list[str]] = {}
    inputs: dict[str, frozenset[str]] = {}
    for bid, block in flat.blocks.items():
        where = f"{block.where}.if"
        read: list[str] = []
        try:
            refs = references(unwrap_condition(block.condition), expression=True)
        except TemplateError as exc:
            problems.append(Problem(where, str(exc)))
            refs = []
        for ref in refs:
            target = _check_ref(ref, where, spec, ids, problems)
            if target is not None and target not in read:
                read.append(target)
        reads[bid] = read
        inputs[bid] = frozenset(r.attr for r in refs if r.name == "inputs" and r.attr)
    for sid, cond in flat.conditions.items():
        extra = frozenset().union(*(inputs.get(g.block, frozenset()) for g in cond.guards))
        input_refs[sid] = input_refs.get(sid, frozenset()) | extra
    return problems + attach(flat, deps, implicit, reads)
