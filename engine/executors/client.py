"""Client steps: handed back to whoever drives the run (the calling agent), who does the
work with its own tools and model and reports the output with `complete_step`."""

from __future__ import annotations

from engine.executors.base import StepCall, StepOutcome
from engine.prompts import system_prompt, user_prompt_template


class ClientExecutor:
    async def execute(self, call: StepCall) -> StepOutcome:
        step = call.step
        request = {
            "step_id": step.id,
            "instructions": call.render(user_prompt_template(step)),
            "system": call.render(system_prompt(step)),
            "inputs": call.dep_outputs(),
            "thinking": call.thinking.mode.value if call.thinking else None,
            "model_hint": call.model.id if call.model else None,
            "output": step.output,
            "attempt": call.attempt,
            "idempotency_key": call.idempotency_key,
        }
        return StepOutcome(handoff=request)
