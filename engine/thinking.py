"""Thinking modes: `auto` picks one from a complexity score; each mode becomes the Messages
API's `thinking`, `output_config.effort` and `max_tokens`, chosen from the model's
capabilities (engine/models.py), never from its name:

- instant: the lowest setting the model accepts: `disabled`, else `between_tools` (with the
  lowest of low/medium/high effort), else `adaptive` at the lowest effort it allows.
- standard, extended: `adaptive` with effort medium / high (the nearest supported level),
  else `enabled` + `budget_tokens` on budget-only models, else thinking off.
- max_tokens: the step's own, else the mode's default, never above the model's limit and
  never above what the step set. A budget stays at least 1024 and leaves MIN_ANSWER tokens
  below max_tokens; a step whose max_tokens cannot hold that gets thinking off instead
  (and the plan says so), or, on a model that cannot turn thinking off, a plan-time error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.model_info import Effort, ModelInfo, ThinkingType
from tutti_mcp.engine.spec import Step, ThinkingMode, WorkflowSpec

_HARD = re.compile(
    r"\b(analy[sz]e|architect\w*|design|security|vulnerab\w*|prove|proof|debug|refactor|"
    r"optimi[sz]e|trade-?offs?|root cause|migrat\w*|concurren\w*|threat|audit|review)\b",
    re.I,
)
_EASY = re.compile(r"\b(list|format|rename|summari[sz]e|extract|translate|classify|count)\b", re.I)

# Budget models: (budget_tokens, max_tokens). Adaptive models: effort level and max_tokens.
BUDGETS = {ThinkingMode.STANDARD: (4_096, 12_000), ThinkingMode.EXTENDED: (16_000, 32_000)}
MAX_TOKENS = {
    ThinkingMode.INSTANT: 4_096,
    ThinkingMode.STANDARD: 16_000,
    ThinkingMode.EXTENDED: 32_000,
}
MIN_BUDGET = 1_024  # the API's minimum budget_tokens
MIN_ANSWER = 512  # tokens a budget leaves for the answer below max_tokens
# Effort per mode, in order of preference (the first level the model supports wins).
EFFORT = {
    ThinkingMode.INSTANT: (Effort.LOW, Effort.MEDIUM, Effort.HIGH, Effort.XHIGH, Effort.MAX),
    ThinkingMode.STANDARD: (Effort.MEDIUM, Effort.HIGH, Effort.LOW, Effort.XHIGH, Effort.MAX),
    ThinkingMode.EXTENDED: (Effort.HIGH, Effort.XHIGH, Effort.MEDIUM, Effort.MAX, Effort.LOW),
}
WITHOUT_THINKING = (Effort.LOW, Effort.MEDIUM, Effort.HIGH)  # efforts `between_tools` takes
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


def strip_templates(text: str) -> str:
    """`text` without its `${...}` expressions (nested braces included): words inside a
    reference (`${classify.output}`) are names, not what the step asks for."""
    out: list[str] = []
    i = 0
    while (start := text.find("${", i)) >= 0:
        out.append(text[i:start])
        depth, j = 1, start + 2
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        out.append(" ")
        i = j
    out.append(text[i:])
    return "".join(out)


def complexity(step: Step, n_inputs: int) -> tuple[float, list[str]]:
    """A 0-10 score from prompt size, number of inputs, declared difficulty and keywords."""
    text = strip_templates(" ".join(t for t in (step.prompt, step.args, step.system) if t))
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


class ThinkingError(ConfigurationError):
    """No thinking setting fits both the model and the step (said at plan time)."""


@dataclass(frozen=True)
class ThinkingParams:
    """The Messages API arguments for a step's thinking, and why they were chosen."""

    params: dict[str, Any]
    why: str


def _effort(model: ModelInfo, preference: tuple[Effort, ...]) -> dict[str, Any]:
    level = model.lowest_effort(preference)
    return {} if level is None else {"output_config": {"effort": level.value}}


def _thinking_off(model: ModelInfo, tokens: int) -> ThinkingParams | None:
    """The lowest setting the model accepts, when that turns thinking off."""
    if model.accepts(ThinkingType.DISABLED):
        return ThinkingParams(
            {"max_tokens": tokens, "thinking": {"type": "disabled"}}, "thinking off (disabled)"
        )
    if model.accepts(ThinkingType.BETWEEN_TOOLS):
        effort = _effort(model, WITHOUT_THINKING)
        level = f" at effort {effort['output_config']['effort']}" if effort else ""
        return ThinkingParams(
            {"max_tokens": tokens, "thinking": {"type": "between_tools"}, **effort},
            f"thinking off: between_tools{level} (the model does not accept disabled)",
        )
    if not model.thinking_types:  # a model without thinking: send nothing about it
        return ThinkingParams({"max_tokens": tokens}, "the model does not think")
    return None


def _adaptive(model: ModelInfo, mode: ThinkingMode, tokens: int, note: str) -> ThinkingParams:
    effort = _effort(model, EFFORT[mode])
    level = f"effort {effort['output_config']['effort']}" if effort else "no effort levels"
    return ThinkingParams(
        {"max_tokens": tokens, "thinking": {"type": "adaptive"}, **effort},
        f"adaptive, {level}{note}",
    )


def _budget(model: ModelInfo, mode: ThinkingMode, step_max: int | None) -> ThinkingParams:
    wanted, default_max = BUDGETS.get(mode, (MIN_BUDGET, MAX_TOKENS[ThinkingMode.INSTANT]))
    tokens = min(step_max or default_max, model.max_tokens)
    budget = wanted if tokens - wanted >= MIN_ANSWER else max(MIN_BUDGET, tokens // 2)
    if tokens - budget >= MIN_ANSWER:
        fit = "" if budget == wanted else f", not {wanted}: max_tokens is {tokens}"
        return ThinkingParams(
            {"max_tokens": tokens, "thinking": {"type": "enabled", "budget_tokens": budget}},
            f"enabled, budget_tokens {budget}{fit} (budget model: no adaptive thinking)",
        )
    short = (
        f"max_tokens {tokens} cannot hold the minimum thinking budget ({MIN_BUDGET}) plus "
        f"{MIN_ANSWER} tokens of answer"
    )
    off = _thinking_off(model, tokens)
    if off is None:
        raise ThinkingError(
            f"{short}, and {model.id} cannot turn thinking off: raise the step's max_tokens "
            f"to at least {MIN_BUDGET + MIN_ANSWER}, or choose another model"
        )
    return ThinkingParams(off.params, f"{off.why}: {short}")


def thinking_params(mode: ThinkingMode, model: ModelInfo, max_tokens: int | None) -> ThinkingParams:
    """`max_tokens`, `thinking` and `output_config` for a mode on this model, and why."""
    if mode is ThinkingMode.AUTO:
        raise ValueError("resolve `auto` with choose() first")
    source = f" [capabilities: {model.source.value}]"
    tokens = min(max_tokens or MAX_TOKENS[mode], model.max_tokens)
    if mode is ThinkingMode.INSTANT:
        off = _thinking_off(model, tokens)
        if off is not None:
            return ThinkingParams(off.params, off.why + source)
        if model.accepts(ThinkingType.ADAPTIVE):
            chosen = _adaptive(model, mode, tokens, ": the model keeps thinking on, lowest effort")
        else:
            chosen = _budget(model, mode, max_tokens)
    elif model.accepts(ThinkingType.ADAPTIVE):
        chosen = _adaptive(model, mode, tokens, "")
    elif model.accepts(ThinkingType.ENABLED):
        chosen = _budget(model, mode, max_tokens)
    else:
        off = _thinking_off(model, tokens)
        assert off is not None  # no adaptive, no enabled: off is all that is left
        chosen = ThinkingParams(off.params, off.why + ": the model has no thinking to turn on")
    return ThinkingParams(chosen.params, chosen.why + source)


def api_params(mode: ThinkingMode, model: ModelInfo, max_tokens: int | None) -> dict[str, Any]:
    """The Messages API arguments (`max_tokens`, `thinking`, `output_config`) for a mode."""
    return thinking_params(mode, model, max_tokens).params
