"""Prompt caching for prompt steps: which part of a request is sent as a cacheable prefix,
and the order in which parallel steps sharing one are sent.

The API caches the prompt prefix (tools, then system, then messages) up to each block
marked `cache_control`. tutti marks the system prompt: the shared part (the preamble and
the step's `context` documents) when the step adds its own part after it, and the end of
the system prompt. A mark is only placed where the prefix reaches the model's minimum
cacheable length (estimated as chars/4): below it the API caches nothing anyway, and
above it a write costs 1.25x input while each later read costs 0.1x.

A cache entry becomes readable once the call that writes it has been answered, so ten
parallel steps sent at once would all write it (and pay 1.25x each). `WarmOrder` sends the
first call for a prefix alone and holds the others until it is answered: one write and
nine reads, at the price of one call's latency for the rest of the group.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from tutti_mcp.engine.models import ModelInfo

EPHEMERAL: dict[str, Any] = {"type": "ephemeral"}  # 5 minutes, refreshed by each read
CACHE_TTL_S = 300.0


def estimate_tokens(chars: int) -> int:
    return (chars + 3) // 4


def cached_system(
    shared: str, own: str, tools: list[dict[str, Any]], model: ModelInfo
) -> tuple[str | list[dict[str, Any]], str | None]:
    """The `system` argument, as text blocks with cache marks where the prefix is long
    enough, and the key of the shortest marked prefix, the one most likely shared with
    other steps (None: nothing is cached)."""
    tool_chars = len(json.dumps(tools)) if tools else 0
    blocks: list[dict[str, Any]] = [{"type": "text", "text": shared}]
    if own:
        blocks.append({"type": "text", "text": own})
    chars = tool_chars
    first_mark = 0
    for i, block in enumerate(blocks):
        chars += len(block["text"])
        if estimate_tokens(chars) >= model.min_cache_tokens:
            block["cache_control"] = dict(EPHEMERAL)
            first_mark = first_mark or i + 1
    if not first_mark:
        return "\n\n".join(p for p in (shared, own) if p), None
    key = hashlib.sha256(
        json.dumps([model.id, tools, [b["text"] for b in blocks[:first_mark]]]).encode()
    ).hexdigest()
    return blocks, key


class WarmOrder:
    """Holds calls whose cacheable prefix is being written by another call until that call
    is answered (at most one writer per prefix at a time). A prefix written within the
    cache's lifetime lets calls through at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._written: dict[str, float] = {}  # prefix key -> when a call wrote it
        self._writing: dict[str, anyio.Event] = {}

    @asynccontextmanager
    async def turn(self, key: str | None) -> AsyncIterator[None]:
        if key is None:
            yield
            return
        while (writing := self._writing.get(key)) is not None:
            await writing.wait()  # bounded by the step's timeout, which covers the call
        written = self._written.get(key)
        if written is not None and self.clock() - written < CACHE_TTL_S:
            self._written[key] = self.clock()  # a read refreshes the entry's lifetime
            yield
            return
        done = self._writing[key] = anyio.Event()
        try:
            yield
            self._written[key] = self.clock()
        finally:
            del self._writing[key]
            done.set()
