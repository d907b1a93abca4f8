"""Sampling steps: run on the calling client's own model through MCP sampling.

The engine knows nothing of MCP: the server passes in a `Sampler` that delivers a
`SamplingRequest` to the client connected to the run and returns its reply. The step's
thinking mode becomes model preferences (a hint: the client picks the model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.spec import Step, ThinkingMode
from tutti_mcp.engine.step_prompts import system_prompt, user_prompt_template
from tutti_mcp.engine.thinking import MAX_TOKENS

# (intelligence, speed, cost) priorities per thinking mode, each 0..1 as MCP defines them.
PREFERENCES: dict[ThinkingMode, tuple[float, float, float]] = {
    ThinkingMode.INSTANT: (0.3, 0.9, 0.7),
    ThinkingMode.STANDARD: (0.6, 0.5, 0.4),
    ThinkingMode.EXTENDED: (1.0, 0.1, 0.1),
}


@dataclass(frozen=True)
class SamplingRequest:
    run_id: str
    step_id: str
    system: str
    prompt: str
    max_tokens: int
    thinking: str  # instant | standard | extended
    intelligence: float
    speed: float
    cost: float
    model_hint: str | None  # the model the spec names, as a hint the client may ignore
    timeout_s: float

    @property
    def key(self) -> str:
        """Identifies the question: the same request asked again renders the same key."""
        return f"{self.run_id}:{self.step_id}"


@dataclass(frozen=True)
class SamplingReply:
    text: str
    model: str | None = None
    stop_reason: str | None = None


class Sampler(Protocol):
    async def __call__(self, request: SamplingRequest) -> SamplingReply: ...


class SamplingExecutor:
    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def check_step(self, step: Step) -> str | None:
        """Why this executor cannot run `step`, said before the run starts."""
        if step.memory:
            return (
                "uses `memory`, but MCP sampling offers the model no tools: set `run: prompt` "
                "(with ANTHROPIC_API_KEY set) to give it the memory tool, or `run: client` to "
                "hand the step to the calling agent with tutti's memory tool"
            )
        return None

    def request(self, call: StepCall) -> SamplingRequest:
        step = call.step
        mode = call.thinking.mode if call.thinking else ThinkingMode.STANDARD
        intelligence, speed, cost = PREFERENCES.get(mode, PREFERENCES[ThinkingMode.STANDARD])
        return SamplingRequest(
            run_id=call.run_id,
            step_id=step.id,
            system=system_prompt(step, call.render),
            prompt=call.render(user_prompt_template(step)),
            max_tokens=step.max_tokens or MAX_TOKENS.get(mode, 16_000),
            thinking=mode.value,
            intelligence=intelligence,
            speed=speed,
            cost=cost,
            model_hint=call.model.id if call.model else None,
            timeout_s=call.timeout_s,
        )

    async def execute(self, call: StepCall) -> StepOutcome:
        reply = await self.sampler(self.request(call))
        usage: dict[str, Any] = {"sampled_by_client": True}
        if reply.model:
            usage["model"] = reply.model
        if reply.stop_reason:
            usage["stop_reason"] = reply.stop_reason
        return StepOutcome(output=reply.text, usage=usage)
