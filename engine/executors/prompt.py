"""Prompt steps on the Anthropic Messages API, through the official `anthropic` SDK.

The thinking mode becomes the model's thinking settings (engine.thinking); usage and
cost are recorded from the response. Rate limits and overload (429, 529) are retried by
the SDK with backoff; what is left over fails the attempt and the step's retry policy
takes over.
"""

from __future__ import annotations

from typing import Any

import anthropic

from engine.errors import StepError
from engine.executors.base import StepCall, StepOutcome
from engine.models import ModelInfo, ModelTable
from engine.prompts import system_prompt, user_prompt_template
from engine.spec import ThinkingMode
from engine.thinking import api_params

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


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
    ) -> None:
        self.client = client
        self.models = models or ModelTable()

    async def execute(self, call: StepCall) -> StepOutcome:
        model = call.model or self.models.resolve(call.step.model)
        params = request_params(call, model)
        try:
            message = await self.client.messages.create(**params, timeout=call.timeout_s)
        except anthropic.APIStatusError as exc:
            retryable = exc.status_code in RETRYABLE_STATUS
            raise StepError(
                f"Anthropic API error {exc.status_code} from {model.id}: {_api_message(exc)}",
                retryable=retryable,
                kind="api",
            ) from None
        except anthropic.APITimeoutError:
            raise StepError(
                f"the Anthropic API did not answer within {call.timeout_s:g}s", kind="timeout"
            ) from None
        except anthropic.APIConnectionError as exc:
            raise StepError(f"cannot reach the Anthropic API: {exc}", kind="connection") from None
        if message.stop_reason == "refusal":
            raise StepError(f"{model.id} refused the request", retryable=False, kind="refusal")
        text = "".join(b.text for b in message.content if b.type == "text")
        usage = usage_dict(message.usage)
        usage["model"] = message.model
        usage["stop_reason"] = message.stop_reason
        return StepOutcome(text, usage=usage, cost_usd=model.cost_usd(usage))


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return exc.message
