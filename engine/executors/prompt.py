"""Prompt steps on the Anthropic Messages API, through the official `anthropic` SDK.

The thinking mode becomes the model's thinking settings (engine.thinking); usage and
cost are recorded from the response. Rate limits and overload (429, 529) are retried by
the SDK with backoff; what is left over fails the attempt and the step's retry policy
takes over.

A step with `memory` gets Anthropic's memory tool, carried out on tutti's memory store
(engine.agent_memory): while the model stops for tool use, its memory commands are carried
out and answered, for at most `max_turns` model turns; usage and cost are summed over them.
"""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types import Message

from engine.agent_memory import MEMORY_TOOL, SYSTEM_LINE, AgentMemory
from engine.errors import ConfigurationError, StepError
from engine.executors.base import StepCall, StepOutcome
from engine.models import ModelInfo, ModelTable
from engine.prompts import system_prompt, user_prompt_template
from engine.spec import Step, ThinkingMode
from engine.thinking import api_params
from memory.async_files import AsyncMemoryFiles

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_TURNS = 25
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "thinking_tokens",
)
NO_MEMORY_STORE = (
    "uses `memory`, but no memory store is configured here: memory files live in tutti's "
    "database, which this engine does not use (e.g. with `optimization.state_persistence: "
    "false`); remove `memory` or run with the database"
)


def request_params(call: StepCall, model: ModelInfo) -> dict[str, Any]:
    """The keyword arguments of `messages.create` for this step."""
    step = call.step
    mode = call.thinking.mode if call.thinking else ThinkingMode.STANDARD
    params: dict[str, Any] = {
        "model": model.id,
        "system": call.render(system_prompt(step)),
        "messages": [{"role": "user", "content": call.render(user_prompt_template(step))}],
        **api_params(mode, model, step.max_tokens),
        "metadata": {"user_id": f"tutti:{call.run_id}"},
    }
    if step.memory:
        params["system"] += "\n\n" + SYSTEM_LINE
        params["tools"] = [MEMORY_TOOL]
    return params


def usage_dict(usage: Any) -> dict[str, Any]:
    details = getattr(usage, "output_tokens_details", None)
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
        "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        "thinking_tokens": (getattr(details, "thinking_tokens", 0) or 0) if details else 0,
    }


class PromptExecutor:
    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        models: ModelTable | None = None,
        *,
        memory: AsyncMemoryFiles | None = None,
        max_turns: int = MAX_TURNS,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.client = client
        self.models = models or ModelTable()
        self.memory = memory
        self.max_turns = max_turns

    def check_step(self, step: Step) -> str | None:
        """Why this executor cannot run `step`, said before the run starts."""
        return NO_MEMORY_STORE if step.memory and self.memory is None else None

    async def execute(self, call: StepCall) -> StepOutcome:
        model = call.model or self.models.resolve(call.step.model)
        params = request_params(call, model)
        agent = self._agent_memory(call)
        messages: list[Any] = params["messages"]
        usage = dict.fromkeys(USAGE_KEYS, 0)
        for turn in range(1, self.max_turns + 1):
            message = await self._create(params, model, call.timeout_s)
            for key, n in usage_dict(message.usage).items():
                usage[key] += n
            if message.stop_reason == "refusal":
                raise StepError(f"{model.id} refused the request", retryable=False, kind="refusal")
            uses = [b for b in message.content if b.type == "tool_use"]
            if agent is None or message.stop_reason != "tool_use" or not uses:
                break
            if turn == self.max_turns:
                raise StepError(
                    f"{model.id} was still using the memory tool after {self.max_turns} turns; "
                    "ask for less in the prompt, or split the step",
                    retryable=False,
                    kind="tool_turns",
                )
            # The assistant turn goes back as received: thinking blocks must stay unchanged.
            messages.append({"role": "assistant", "content": message.content})
            messages.append({"role": "user", "content": await agent.answer(uses)})
        text = "".join(b.text for b in message.content if b.type == "text")
        result: dict[str, Any] = {
            **usage,
            "model": message.model,
            "stop_reason": message.stop_reason,
        }
        if agent is not None:
            result["turns"] = turn
        return StepOutcome(text, usage=result, cost_usd=model.cost_usd(usage))

    def _agent_memory(self, call: StepCall) -> AgentMemory | None:
        if not call.step.memory:
            return None
        if self.memory is None:
            raise ConfigurationError(f"step {call.step.id!r} {NO_MEMORY_STORE}")
        return AgentMemory.for_step(
            self.memory,
            call.step.memory,
            run_id=call.run_id,
            step_id=call.step.id,
            workflow=call.workflow,
            workspace=call.workspace,
        )

    async def _create(self, params: dict[str, Any], model: ModelInfo, timeout_s: float) -> Message:
        try:
            message: Message = await self.client.messages.create(**params, timeout=timeout_s)
        except anthropic.APIStatusError as exc:
            retryable = exc.status_code in RETRYABLE_STATUS
            raise StepError(
                f"Anthropic API error {exc.status_code} from {model.id}: {_api_message(exc)}",
                retryable=retryable,
                kind="api",
            ) from None
        except anthropic.APITimeoutError:
            raise StepError(
                f"the Anthropic API did not answer within {timeout_s:g}s", kind="timeout"
            ) from None
        except anthropic.APIConnectionError as exc:
            raise StepError(f"cannot reach the Anthropic API: {exc}", kind="connection") from None
        return message


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return exc.message
