"""Thinking modes: `auto` picks one from a complexity score; each mode maps onto a model's
thinking settings (adaptive + effort, or budget_tokens with max_tokens above the budget)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.models import ModelInfo
from engine.spec import Step, ThinkingMode, WorkflowSpec

_HARD = re.compile(
    r"\b(analy[sz]e|architect\w*|design|security|vulnerab\w*|prove|proof|debug|refactor|"
    r"optimi[sz]e|trade-?offs?|root cause|migrat\w*|concurren\w*|threat|audit|review)\b",
    re.I,
)
_EASY = re.compile(r"\b(list|format|rename|summari[sz]e|extract|translate|classify|count)\b", re.I)

# Budget models: (budget_tokens, max_tokens). Adaptive models: effort level and max_tokens.
BUDGETS = {ThinkingMode.STANDARD: (4_096, 12_000), ThinkingMode.EXTENDED: (16_000, 32_000)}
EFFORT = {
    ThinkingMode.INSTANT: "low",
    ThinkingMode.STANDARD: "medium",
    ThinkingMode.EXTENDED: "high",
}
MAX_TOKENS = {
    ThinkingMode.INSTANT: 4_096,
    ThinkingMode.STANDARD: 16_000,
    ThinkingMode.EXTENDED: 32_000,
}
COMMAND_WEIGHT = {"/query": 1.0, "/task": 2.0, "/protocol": 1.5}


@dataclass(frozen=True)
class ThinkingChoice:
    mode: ThinkingMode  # never AUTO
    requested: ThinkingMode
    score: float | None = None
    reasons: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str:
        if self.requested is not ThinkingMode.AUTO:
            return f"set to {self.mode.value}"
        return f"auto: score {self.score:.1f}/10 -> {self.mode.value} ({'; '.join(self.reasons)})"


def complexity(step: Step, n_inputs: int) -> tuple[float, list[str]]:
    """A 0-10 score from prompt size, number of inputs, declared difficulty and keywords."""
    text = " ".join(t for t in (step.prompt, step.args, step.system) if t)
    score, why = 2.0, ["base 2"]
    words = len(text.split())
    if words > 40:
        bump = min(3.0, words / 150)
        score += bump
        why.append(f"{words} words +{bump:.1f}")
    if n_inputs:
        bump = min(2.0, 0.5 * n_inputs)
        score += bump
        why.append(f"{n_inputs} upstream inputs +{bump:.1f}")
    if step.command and step.command.split()[0] in COMMAND_WEIGHT:
        bump = COMMAND_WEIGHT[step.command.split()[0]]
        score += bump
        why.append(f"{step.command.split()[0]} +{bump:.1f}")
    hard = sorted({m.lower() for m in _HARD.findall(text)})
    if hard:
        bump = min(3.0, 1.5 * len(hard))
        score += bump
        why.append(f"keywords {', '.join(hard)} +{bump:.1f}")
    easy = sorted({m.lower() for m in _EASY.findall(text)})
    if easy and not hard:
        score -= 1.5
        why.append(f"keywords {', '.join(easy)} -1.5")
    if step.difficulty:
        bump = {"low": -2.0, "medium": 1.0, "high": 4.0}[step.difficulty]
        score += bump
        why.append(f"difficulty {step.difficulty} {bump:+.1f}")
    return max(0.0, min(10.0, score)), why


def choose(step: Step, spec: WorkflowSpec, n_inputs: int) -> ThinkingChoice:
    """The step's thinking mode: its own, else the workflow default, else auto (when the
    seed's `adaptive_thinking` is on) or standard."""
    requested = step.thinking or spec.defaults.thinking
    if requested is None:
        requested = (
            ThinkingMode.AUTO if spec.optimization.adaptive_thinking else ThinkingMode.STANDARD
        )
    if requested is not ThinkingMode.AUTO:
        return ThinkingChoice(requested, requested)
    score, why = complexity(step, n_inputs)
    if score < 3:
        mode = ThinkingMode.INSTANT
    elif score < 7:
        mode = ThinkingMode.STANDARD
    else:
        mode = ThinkingMode.EXTENDED
    return ThinkingChoice(mode, requested, score, tuple(why))


def api_params(mode: ThinkingMode, model: ModelInfo, max_tokens: int | None) -> dict[str, Any]:
    """The Messages API arguments (`max_tokens`, `thinking`, `output_config`) for a mode."""
    if mode is ThinkingMode.AUTO:
        raise ValueError("resolve `auto` with choose() first")
    limit = model.max_output_tokens
    if not model.adaptive:
        if mode is ThinkingMode.INSTANT:
            tokens = max_tokens or MAX_TOKENS[mode]
            return {"max_tokens": min(tokens, limit), "thinking": {"type": "disabled"}}
        budget, default_max = BUDGETS[mode]
        tokens = min(max_tokens or default_max, limit)
        if tokens <= budget:  # budget_tokens must stay below max_tokens
            budget = max(1_024, tokens // 2)
            tokens = max(tokens, budget + 1_024)
        return {"max_tokens": tokens, "thinking": {"type": "enabled", "budget_tokens": budget}}
    tokens = min(max_tokens or MAX_TOKENS[mode], limit)
    if mode is ThinkingMode.INSTANT and model.can_disable_thinking:
        return {"max_tokens": tokens, "thinking": {"type": "disabled"}}
    return {
        "max_tokens": tokens,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": EFFORT[mode]},
    }
