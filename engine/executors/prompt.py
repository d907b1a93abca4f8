"""Prompt steps on the Anthropic Messages API, through the official `anthropic` SDK.

The thinking mode becomes the model's thinking settings (engine.thinking); usage and
cost are recorded from the response. Rate limits and overload (429, 529) are retried by
the SDK with backoff; what is left over fails the attempt and the step's retry policy
takes over.

A step with `tools` (or `memory`) gets its toolbox (engine.toolbox): read, grep, glob,
bash under the shell policy, and Anthropic's memory tool on tutti's memory store. While the
model stops for tool use, every tool call of the turn is carried out and answered, for at
most `max_turns` model turns and `max_loop_tokens` tokens; usage and cost are summed over
them, and each call is recorded in the step's usage as `tool_calls`.

Stop reasons: `refusal` fails the step (not retried). `max_tokens` (or a full context
window) marks the result `truncated`; it fails the step unless the step says
`on_truncation: accept`, and always for `output: json`. `pause_turn` continues the turn.
A failed attempt's error carries what it consumed, so the run's totals count it.

A step with `output: json` and a `json_schema` gets structured outputs
(`output_config.format`) on models that support them; elsewhere the schema goes into the
system prompt. Long shared prompt prefixes are sent as cacheable blocks (prompt_cache).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from tutti_mcp.engine.agent_memory import AgentMemory
from tutti_mcp.engine.errors import ConfigurationError, StepError, StepErrorKind
from tutti_mcp.engine.executors.base import StepCall, StepOutcome
from tutti_mcp.engine.executors.prompt_cache import WarmOrder, cached_system
from tutti_mcp.engine.models import ModelInfo, ModelTable
from tutti_mcp.engine.spec import Step, ThinkingMode, TruncationPolicy
from tutti_mcp.engine.step_prompts import system_parts, user_prompt_template
from tutti_mcp.engine.thinking import api_params
from tutti_mcp.engine.toolbox.bash import ShellAccess
from tutti_mcp.engine.toolbox.loop import Toolbox
from tutti_mcp.engine.toolbox.spec import ToolName, toolset
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles

if TYPE_CHECKING:  # the SDK takes about a second to import: it is loaded with the client
    import anthropic
    from anthropic.types import Message

# A client, or what makes one when the first step needs it (server/api_client.py), so that
# a process that runs no prompt step (`tutti serve` answering `initialize`) never loads the SDK.
ClientSource: TypeAlias = (
    "anthropic.AsyncAnthropic | Callable[[], Awaitable[anthropic.AsyncAnthropic]]"
)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_TURNS = 25
MAX_LOOP_TOKENS = 2_000_000  # tokens (all kinds) a step's tool-use turns may use together
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


TRUNCATED = {
    "max_tokens": "the answer was cut off at max_tokens ({max_tokens})",
    "model_context_window_exceeded": "the answer was cut off: the model's context window is full",
}


def structured(step: Step, model: ModelInfo) -> bool:
    """Whether the API constrains this step's answer to its JSON Schema."""
    return step.output == "json" and step.json_schema is not None and model.structured_outputs


def request_params(
    call: StepCall, model: ModelInfo, *, cache: bool = True, toolbox: Toolbox | None = None
) -> tuple[dict[str, Any], str | None]:
    """The keyword arguments of `messages.create` for this step, and the key of its cached
    prompt prefix (None when nothing is cached)."""
    step = call.step
    mode = call.thinking.mode if call.thinking else ThinkingMode.STANDARD
    shared, own = system_parts(step, structured=structured(step, model)).rendered(call.render)
    tools = toolbox.definitions() if toolbox else []
    if toolbox:
        line = toolbox.system_lines()
        own = f"{own}\n\n{line}" if own else line
    system: str | list[dict[str, Any]] = "\n\n".join(p for p in (shared, own) if p)
    key = None
    if cache and step.cache:
        system, key = cached_system(shared, own, tools, model)
    params: dict[str, Any] = {
        "model": model.id,
        "system": system,
        "messages": [{"role": "user", "content": call.render(user_prompt_template(step))}],
        **api_params(mode, model, step.max_tokens),
        "metadata": {"user_id": f"tutti:{call.run_id}"},
    }
    if tools:
        params["tools"] = tools
    if structured(step, model):
        fmt = {"type": "json_schema", "schema": step.json_schema}
        params["output_config"] = {**params.get("output_config", {}), "format": fmt}
    return params, key


def usage_dict(usage: Any) -> dict[str, int]:
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
        client: ClientSource,
        models: ModelTable | None = None,
        *,
        memory: AsyncMemoryFiles | None = None,
        max_turns: int = MAX_TURNS,
        max_loop_tokens: int = MAX_LOOP_TOKENS,
        cache: bool = True,
        warm_cache: bool = True,
        shell: ShellAccess | None = None,
    ) -> None:
        """`cache`: send long shared prompt prefixes as cacheable blocks; `warm_cache`: send
        the first call for such a prefix alone, the rest once it is cached. `shell`: what
        the `bash` tool may run (default: nothing)."""
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self._client_source = client
        self.client: anthropic.AsyncAnthropic | None = None if callable(client) else client
        self.models = models or ModelTable()
        self.memory = memory
        self.max_turns = max_turns
        self.max_loop_tokens = max_loop_tokens
        self.shell = shell or ShellAccess()
        self.cache = cache
        self.warm = WarmOrder() if warm_cache else None

    def check_step(self, step: Step) -> str | None:
        """Why this executor cannot run `step`, said before the run starts."""
        if step.memory and self.memory is None:
            return NO_MEMORY_STORE
        grants = toolset(step.tools)
        return self.shell.problem(grants) if grants.has(ToolName.BASH) else None

    async def execute(self, call: StepCall) -> StepOutcome:
        model = call.model or self.models.resolve(call.step.model)
        toolbox = self._toolbox(call)
        params, cache_key = request_params(call, model, cache=self.cache, toolbox=toolbox)
        usage = dict.fromkeys(USAGE_KEYS, 0)
        try:
            message, turns, paused = await self._turns(
                params, model, call, toolbox, usage, cache_key
            )
        except StepError as exc:
            if exc.usage is None and any(usage.values()):
                spent: dict[str, Any] = {**usage, "cost_usd": model.cost_usd(usage)}
                if toolbox is not None and toolbox.transcript:  # kept with the failure
                    spent["tool_calls"] = toolbox.transcript
                raise StepError(
                    str(exc), retryable=exc.retryable, kind=exc.kind, usage=spent
                ) from None
            raise
        cost = model.cost_usd(usage)
        result: dict[str, Any] = {
            **usage,
            "model": message.model,
            "stop_reason": message.stop_reason,
        }
        if toolbox is not None:
            result["turns"] = turns
            result["tool_calls"] = toolbox.transcript
        text = paused + "".join(b.text for b in message.content if b.type == "text")
        return self._outcome(call.step, model, params, message, text, result, cost)

    async def _turns(
        self,
        params: dict[str, Any],
        model: ModelInfo,
        call: StepCall,
        toolbox: Toolbox | None,
        usage: dict[str, int],
        cache_key: str | None,
    ) -> tuple[Message, int, str]:
        """The model's turns until it stops for something other than its tools or a
        pause, and the text of the paused turns that the last one continues. `usage` is
        summed in place, so it holds what was spent if a turn fails."""
        messages: list[Any] = params["messages"]
        paused_text = ""
        for turn in range(1, self.max_turns + 1):
            if turn == 1 and self.warm is not None:
                async with self.warm.turn(cache_key):
                    message = await self._create(params, model, call.timeout_s)
            else:
                message = await self._create(params, model, call.timeout_s)
            for key, n in usage_dict(message.usage).items():
                usage[key] += n
            uses = [b for b in message.content if b.type == "tool_use"]
            paused = message.stop_reason == "pause_turn"
            if not paused and (toolbox is None or message.stop_reason != "tool_use" or not uses):
                return message, turn, paused_text
            if turn == self.max_turns:
                raise StepError(
                    f"{model.id} was still using {_tools_word(toolbox)} after {self.max_turns} "
                    "turns; ask for less in the prompt, or split the step",
                    retryable=False,
                    kind=StepErrorKind.TOOL_TURNS,
                )
            spent = sum(usage.values()) - usage["thinking_tokens"]  # thinking is in output
            if spent > self.max_loop_tokens:
                raise StepError(
                    f"{model.id} had used {spent} tokens over {turn} turns of tool use, more "
                    f"than the {self.max_loop_tokens} a step's tool use may; ask for less in "
                    "the prompt, or split the step",
                    retryable=False,
                    kind=StepErrorKind.TOOL_TURNS,
                )
            # The assistant turn goes back as received: thinking blocks must stay unchanged.
            messages.append({"role": "assistant", "content": message.content})
            if paused:  # continued as it stands: the next answer goes on from its text
                paused_text += "".join(b.text for b in message.content if b.type == "text")
            else:
                assert toolbox is not None
                paused_text = ""
                messages.append({"role": "user", "content": await toolbox.answer(uses, turn)})
        raise AssertionError("unreachable: the last turn returns or raises")

    def _outcome(
        self,
        step: Step,
        model: ModelInfo,
        params: dict[str, Any],
        message: Message,
        text: str,
        result: dict[str, Any],
        cost: float | None,
    ) -> StepOutcome:
        """The step's outcome by the model's stop reason."""
        spent = {k: result[k] for k in USAGE_KEYS} | {"cost_usd": cost}
        if message.stop_reason == "refusal":
            said = f": {text.strip()[:300]}" if text.strip() else ""
            raise StepError(
                f"{model.id} refused the request (stop_reason refusal){said}. A refusal is "
                "not retried: rephrase the prompt or choose another model",
                retryable=False,
                kind=StepErrorKind.REFUSAL,
                usage=spent,
            )
        cut = TRUNCATED.get(message.stop_reason or "")
        if cut is None:
            return StepOutcome(text, usage=result, cost_usd=cost)
        result["truncated"] = True
        why = cut.format(max_tokens=params["max_tokens"])
        if step.output == "json":
            raise StepError(
                f"{why} before the JSON answer was complete; raise the step's `max_tokens`",
                retryable=False,
                kind=StepErrorKind.TRUNCATED,
                usage=spent,
            )
        if step.on_truncation is TruncationPolicy.FAIL:
            raise StepError(
                f"{why}; raise the step's `max_tokens`, or set `on_truncation: accept` to "
                "keep cut-off answers",
                retryable=False,
                kind=StepErrorKind.TRUNCATED,
                usage=spent,
            )
        warning = f"truncated: {why} (accepted: `on_truncation: accept`)"
        return StepOutcome(text, usage=result, cost_usd=cost, warning=warning)

    def _toolbox(self, call: StepCall) -> Toolbox | None:
        grants = toolset(call.step.tools)
        if not grants and not call.step.memory:
            return None
        own_env = {
            "TUTTI_RUN_ID": call.run_id,
            "TUTTI_STEP_ID": call.step.id,
            "TUTTI_ATTEMPT": str(call.attempt),
            "TUTTI_IDEMPOTENCY_KEY": call.idempotency_key,
        }
        return Toolbox.for_step(
            grants,
            workspace=call.workspace,
            memory=self._agent_memory(call),
            access=self.shell,
            own_env=own_env,
        )

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

    async def _connect(self) -> anthropic.AsyncAnthropic:
        if self.client is None:
            source = self._client_source
            assert callable(source)
            self.client = await source()
        return self.client

    async def _create(self, params: dict[str, Any], model: ModelInfo, timeout_s: float) -> Message:
        client = self.client or await self._connect()
        import anthropic  # loaded with the client, by now

        try:
            message: Message = await client.messages.create(**params, timeout=timeout_s)
        except anthropic.APIStatusError as exc:
            retryable = exc.status_code in RETRYABLE_STATUS
            raise StepError(
                f"Anthropic API error {exc.status_code} from {model.id}: {_api_message(exc)}",
                retryable=retryable,
                kind=StepErrorKind.API,
            ) from None
        except anthropic.APITimeoutError:
            raise StepError(
                f"the Anthropic API did not answer within {timeout_s:g}s",
                kind=StepErrorKind.TIMEOUT,
            ) from None
        except anthropic.APIConnectionError as exc:
            raise StepError(
                f"cannot reach the Anthropic API: {exc}", kind=StepErrorKind.CONNECTION
            ) from None
        except (json.JSONDecodeError, anthropic.APIResponseValidationError) as exc:
            # A body cut off or mangled on the way (a proxy, a dropped connection): the
            # request itself may well be fine.
            raise StepError(
                f"malformed JSON from the Anthropic API (model {model.id}): "
                f"{type(exc).__name__}: {exc}; a retry may help",
                kind=StepErrorKind.API_RESPONSE,
            ) from None
        return message


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return exc.message


def _tools_word(toolbox: Toolbox | None) -> str:
    names = list(toolbox.tools) if toolbox else []
    if len(names) == 1:
        return f"the {names[0]} tool"
    return "its tools (" + ", ".join(names) + ")"
