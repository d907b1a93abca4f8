"""Client steps: handed back to whoever drives the run (the calling agent), who does the
work with its own tools and model and reports the output with `complete_step`."""

from __future__ import annotations

from tutti_mcp.engine.agent_memory import client_instructions, resolve_scope
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.step_prompts import system_prompt, user_prompt_template
from tutti_mcp.engine.toolbox.spec import client_lines, toolset
from tutti_mcp.memory.runs.records import ClientRequest


class ClientExecutor:
    async def execute(self, call: StepCall) -> StepOutcome:
        step = call.step
        instructions = call.render(user_prompt_template(step))
        scope = resolve_scope(step.memory, call.workflow, call.workspace) if step.memory else None
        tools = client_lines(toolset(step.tools))
        if tools:  # the calling agent has its own tools: it is told which this step allows
            instructions += "\n\n" + tools
        if scope is not None:
            # In the instructions, since they are what reaches the calling model.
            instructions += "\n\n" + client_instructions(scope)
        request: ClientRequest = {
            "step_id": step.id,
            "instructions": instructions,
            "system": system_prompt(step, call.render),
            "inputs": call.dep_outputs(),
            "thinking": call.thinking.mode.value if call.thinking else None,
            "model_hint": call.model.id if call.model else None,
            "output": step.output,
            "attempt": call.attempt,
            "idempotency_key": call.idempotency_key,
        }
        if scope is not None:
            request["memory_scope"] = scope
        return StepOutcome(handoff=request)
