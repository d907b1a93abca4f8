"""A fake Anthropic Messages API (`POST /v1/messages`, non-streaming JSON) on 127.0.0.1.

Tests point the real `anthropic` SDK at it (`base_url=fake.base_url`). It records every
request and answers from a script of replies (`message`, `turn` for any content blocks
such as tool_use turns, `error`, `delay`, `estimated`, `malformed`); when the script is
empty it answers with `default` (a deterministic text message unless set).

Like the real API it knows its models (tests/fake_models.py, `fake.models`): it serves
`GET /v1/models` and `/v1/models/{id}`, and answers a request with a model it does not know
(404) or a thinking type, effort or max_tokens the model does not accept (400
invalid_request_error) before any scripted reply.

Prompt caching is accounted like the real API: the prefix up to each block marked
`cache_control` (tools, then system, then messages) is hashed with the model; a prefix seen
before (and answered) is read from the cache, a new one of at least `min_cache_tokens` is
written. A cache entry becomes readable once the request that wrote it has been answered,
so parallel requests that arrive together all write. Tokens are estimated as chars/4.
Replies with `usage=None` (`estimated`) report that accounting; scripted usage is sent as is.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests import fake_models
from tests.fake_cache import (
    CacheUse,
    PromptCache,
    instance_of,
    output_format_problem,
    schema_of,
    tokens,
)


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a message (status 200) or an API error, maybe after a delay."""

    status: int = 200
    text: str | None = None  # None: the default, deterministic text
    content: tuple[dict[str, Any], ...] | None = None  # content blocks, instead of `text`
    model: str | None = None  # None: the request's model
    stop_reason: str = "end_turn"
    # None: estimated from the request (chars/4) with prompt-cache accounting (`estimated`)
    usage: dict[str, Any] | None = field(default_factory=dict)
    output_tokens: int | None = None  # with usage=None; default chars/4 of the text
    raw_body: bytes | None = None  # sent as is, status 200: a malformed body (`malformed`)
    error_type: str = "api_error"
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def message(
    text: str | None = None,
    *,
    model: str | None = None,
    stop_reason: str = "end_turn",
    input_tokens: int = 10,
    output_tokens: int = 5,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    thinking_tokens: int = 0,
) -> Reply:
    usage = _usage(
        input_tokens,
        output_tokens,
        cache_creation_input_tokens,
        cache_read_input_tokens,
        thinking_tokens,
    )
    return Reply(text=text, model=model, stop_reason=stop_reason, usage=usage)


def turn(
    *content: dict[str, Any],
    stop_reason: str = "tool_use",
    input_tokens: int = 10,
    output_tokens: int = 5,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    thinking_tokens: int = 0,
) -> Reply:
    """A message made of the given content blocks (`tool_use`, `thinking`, `text_block` below),
    by default a tool-use turn."""
    usage = _usage(
        input_tokens,
        output_tokens,
        cache_creation_input_tokens,
        cache_read_input_tokens,
        thinking_tokens,
    )
    return Reply(content=content, stop_reason=stop_reason, usage=usage)


def tool_use(id: str, input: dict[str, Any], *, name: str = "memory") -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def thinking(text: str, signature: str = "c2lnbmF0dXJl") -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": signature}


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _usage(
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int,
    cache_read_input_tokens: int,
    thinking_tokens: int,
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
        "output_tokens_details": {"thinking_tokens": thinking_tokens},
    }


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error(
    status: int,
    msg: str = "",
    *,
    type: str | None = None,
    retry_after: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An API error with the real body shape; `retry_after` is sent as the `retry-after`
    header."""
    etype = type or ERROR_TYPES.get(status, "api_error")
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["retry-after"] = retry_after
    return Reply(status=status, error_type=etype, error_message=msg or etype, headers=hdrs)


def delay(seconds: float, then: Reply | None = None) -> Reply:
    """Wait `seconds` (interrupted by server shutdown), then answer `then` (default text)."""
    return replace(then or message(), delay_s=seconds)


def estimated(
    text: str | None = None,
    *,
    stop_reason: str = "end_turn",
    output_tokens: int | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """A text reply whose usage is estimated from the request, with prompt-cache accounting;
    output tokens default to chars/4 of the text."""
    return Reply(
        text=text, stop_reason=stop_reason, usage=None, output_tokens=output_tokens, delay_s=delay_s
    )


def malformed(
    body: bytes = b'{"id": "msg_fake", "type": "message", "content": [{"type": "te',
) -> Reply:
    """A 200 whose body is not valid JSON (a connection cut mid-body, a broken proxy)."""
    return Reply(raw_body=body)


def reply_output_tokens(reply: Reply, text: str) -> int:
    return tokens(len(text)) if reply.output_tokens is None else reply.output_tokens


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: Any


_HOST = "127.0.0.1"


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a sixth simultaneous connection waits for
    # a SYN retransmit (1 s), which would show up as latency of the API in benchmarks.
    request_queue_size = 128


class FakeAnthropic:
    def __init__(self, *, default: Reply | None = None, min_cache_tokens: int = 1024) -> None:
        self.requests: list[Request] = []
        self.default = default
        self.cache = PromptCache(min_cache_tokens)
        self.models = dict(fake_models.MODELS)
        self._script: deque[Reply] = deque()
        # answers by what a request says, before the script (agents answering in parallel)
        self.responder: Callable[[Any], Reply | None] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server((_HOST, 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://{_HOST}:{self._server.server_port}"

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    def script(self, *replies: Reply) -> None:
        """Queue replies, answered in order; then the default reply again."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers waiting in a delay
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- called from handler threads ---------------------------------------------------
    def _take(self, req: Request) -> tuple[int, Reply, CacheUse]:
        with self._lock:
            self.requests.append(req)
            reply = self.responder(req.body) if self.responder is not None else None
            if reply is None:
                reply = self._script.popleft() if self._script else (self.default or message())
            use = self.cache.lookup(req.body) if isinstance(req.body, dict) else CacheUse()
            return len(self.requests), reply, use

    def _answer(
        self, n: int, req: Request, reply: Reply, use: CacheUse
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.cache.answered(use)
        body: dict[str, Any]
        if reply.status != 200:
            body = {
                "type": "error",
                "error": {"type": reply.error_type, "message": reply.error_message},
            }
            return reply.status, reply.headers, body
        sent = req.body if isinstance(req.body, dict) else {}
        bad = output_format_problem(sent)
        if bad:
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": bad}}
            return 400, {}, body
        text = reply.text
        schema = schema_of(sent)
        if text is None and schema is not None:
            text = json.dumps(instance_of(schema))
        elif text is None:
            last = sent.get("messages", [{}])[-1].get("content", "")
            text = f"fake reply {n}: {str(last)[:60]}"
        usage = reply.usage
        if usage is None:
            usage = use.usage(reply_output_tokens(reply, text))
        body = {
            "id": f"msg_fake_{n:04d}",
            "type": "message",
            "role": "assistant",
            "model": reply.model or sent.get("model", "claude-fake"),
            "content": list(reply.content)
            if reply.content is not None
            else [{"type": "text", "text": text}],
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage or message().usage,
        }
        return 200, {"request-id": f"req_fake_{n:04d}", **reply.headers}, body

    # -- what the real API checks (tests/fake_models.py) -------------------------------
    def _check(self, req: Request) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        """The real API's refusal of a request its model does not accept, or whose tools or
        tool turns it rejects (recorded, and no scripted reply is used up), or None."""
        problem = fake_models.check_request(self.models, req.body)
        if problem is None and isinstance(req.body, dict):
            bad = tool_problem(req.body)
            problem = None if bad is None else (400, "invalid_request_error", bad)
        if problem is None:
            return None
        with self._lock:
            self.requests.append(req)
        status, etype, msg = problem
        return status, {}, {"type": "error", "error": {"type": etype, "message": msg}}

    def _models_endpoint(self, req: Request) -> tuple[int, dict[str, str], dict[str, Any]]:
        """`GET /v1/models` (paginated) and `GET /v1/models/{id}`."""
        with self._lock:
            self.requests.append(req)
        url = urllib.parse.urlsplit(req.path)
        if url.path == "/v1/models":
            return 200, {}, fake_models.list_page(self.models, urllib.parse.parse_qs(url.query))
        prefix = "/v1/models/"
        model_id = urllib.parse.unquote(url.path[len(prefix) :])
        if url.path.startswith(prefix) and model_id in self.models:
            return 200, {}, self.models[model_id].info(model_id)
        err = {"type": "not_found_error", "message": f"model: {model_id or url.path}"}
        return 404, {}, {"type": "error", "error": err}


TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def tool_problem(body: dict[str, Any]) -> str | None:
    """What the real API rejects (400) in a request's tools and tool turns: a custom tool
    without a name or an object input_schema; tool blocks without tools defined; a
    `tool_use` not answered by a `tool_result` in the next user message (results first), a
    `tool_result` answering no `tool_use` of the previous turn, an empty error result."""
    tools = body.get("tools") or []
    for i, tool in enumerate(tools):
        if "type" in tool and tool["type"] != "custom":
            continue  # a server or Anthropic-defined tool (memory_20250818)
        if not TOOL_NAME.match(str(tool.get("name", ""))):
            return f"tools.{i}.custom.name: String should match pattern '{TOOL_NAME.pattern}'"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{i}.custom.input_schema: an object schema with type 'object' required"
    messages = body.get("messages") or []
    previous: list[str] = []
    for i, msg in enumerate(messages):
        content = msg.get("content")
        blocks = content if isinstance(content, list) else []
        kinds = [b.get("type") for b in blocks]
        if ("tool_use" in kinds or "tool_result" in kinds) and not tools:
            return "Requests which include `tool_use` or `tool_result` blocks must define tools."
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if previous:
            answered = [b.get("tool_use_id") for b in results]
            missing = [t for t in previous if t not in answered]
            first = kinds[: len(results)] == ["tool_result"] * len(results)
            if msg.get("role") != "user" or missing or not first:
                return (
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing or previous)}. Each `tool_use` block "
                    "must have a corresponding `tool_result` block in the next message."
                )
        for j, b in enumerate(results):
            if b.get("tool_use_id") not in previous:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {b.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
            if b.get("is_error") and not b.get("content"):
                return f"messages.{i}.content.{j}: content cannot be empty if `is_error` is true"
        previous = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    return None


def _handler_class(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Headers and body go out in two writes: with Nagle on, the body waits for the
        # client's (delayed) ACK of the headers, ~40 ms per response on a reused connection.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body: Any = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if self.path.split("?")[0] != "/v1/messages":
                fake._take(req)
                err = {"type": "not_found_error", "message": f"no route {self.path}"}
                self._send(404, {}, {"type": "error", "error": err})
                return
            rejected = fake._check(req)
            if rejected is not None:
                self._send(*rejected)
                return
            n, reply, use = fake._take(req)
            if reply.delay_s and fake._stopping.wait(reply.delay_s):
                return  # shutting down: drop the connection without answering
            if reply.raw_body is not None:
                fake._answer(n, req, reply, use)
                self._send(200, {"request-id": f"req_fake_{n:04d}"}, reply.raw_body)
                return
            self._send(*fake._answer(n, req, reply, use))

        def do_GET(self) -> None:
            req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, None)
            self._send(*fake._models_endpoint(req))

        def _send(self, status: int, headers: dict[str, str], body: dict[str, Any] | bytes) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (a timeout test); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    try:
        yield fake
    finally:
        fake.stop()
