"""What a workflow's API steps need from their models, checked before the run starts: a
thinking setting that fits both the model and the step, and, under a cost budget, a known
price (else the budget could not count the step: it would never stop it)."""

from __future__ import annotations

from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.thinking import ThinkingError, choose, thinking_params
from tutti_mcp.engine.workflow import Workflow


def api_step_problems(wf: Workflow, models: ModelTable) -> list[str]:
    """One line per problem of the steps that run on the Anthropic API."""
    spec = wf.spec
    problems: list[str] = []
    unpriced: list[str] = []
    for sid in wf.order:
        step = wf.steps[sid]
        if wf.executors[sid] is not ExecutorKind.PROMPT:
            continue
        model = models.resolve(wf.model_ids[sid])
        mode = choose(step, spec, wf.upstream_refs.get(sid, 0)).mode
        try:
            thinking_params(mode, model, step.max_tokens)
        except ThinkingError as exc:
            problems.append(f"step {sid!r} ({mode.value} thinking on {model.id}): {exc}")
        if model.prices is None:
            unpriced.append(f"{sid!r} ({model.id})")
    budget = spec.budget
    if unpriced and budget.max_cost_usd is not None and not budget.allow_unpriced:
        many = len(unpriced) > 1
        problems.append(
            f"budget.max_cost_usd is {budget.max_cost_usd:g}, but the cost of "
            f"step{'s' if many else ''} {', '.join(unpriced)} cannot be counted: "
            f"{'those models have' if many else 'that model has'} no known price. Give the "
            "prices in the TUTTI_MODELS file (`models: {ID: {prices: {input: ..., output: "
            "...}}}`, USD per million tokens), choose a priced model (`tutti models` lists "
            "prices), or set `budget.allow_unpriced: true` to run without counting "
            f"{'them' if many else 'it'}"
        )
    return problems
