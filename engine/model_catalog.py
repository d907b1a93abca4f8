"""Model capabilities from the Models API (`client.models.retrieve` / `models.list`), the
source of truth, cached in the database with a refresh age.

A run asks only about the models its API steps use, once per process per model, with a
short timeout and no retries; the answers go into the model table (engine/models.py) that
planning and the prompt executor read. Offline, on an error, or for a model the API does
not describe, the shipped table stays in force: one warning, never a failure. A cached
answer older than the refresh age is asked again; if that fails, the old answer is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from tutti_mcp.engine.errors import TuttiError
from tutti_mcp.engine.model_info import Effort, ModelInfo, Source, ThinkingType
from tutti_mcp.engine.models import ModelTable

if TYPE_CHECKING:  # the SDK takes about a second to import: only runs with a client load it
    import anthropic

    from tutti_mcp.engine.executors.prompt import ClientSource

log = logging.getLogger("tutti.models")
FETCH_TIMEOUT_S = 5.0
DEFAULT_MAX_AGE_S = 24 * 3600.0


class CapabilityCache(Protocol):
    """Where answers of the Models API are kept between processes (memory/model_cache.py)."""

    async def load(
        self, ids: Iterable[str] | None = None
    ) -> dict[str, tuple[dict[str, Any], float]]: ...
    async def save(self, entries: Iterable[tuple[str, dict[str, Any], float]]) -> None: ...


class NotDescribed(TuttiError, ValueError):
    """The Models API's answer carries no capabilities tutti can use."""


def _supported(node: Any) -> bool:
    return isinstance(node, Mapping) and node.get("supported") is True


def from_api(model_id: str, data: Mapping[str, Any], source: Source) -> ModelInfo:
    """Our record of a ModelInfo (as JSON): capabilities and limits, no prices."""
    caps = data.get("capabilities")
    if not isinstance(caps, Mapping) or not isinstance(caps.get("thinking"), Mapping):
        raise NotDescribed(f"the Models API reports no capabilities for {model_id}")
    thinking = caps["thinking"]
    types = thinking.get("types") or {}
    effort = caps.get("effort") or {}
    max_tokens = data.get("max_tokens")
    if not isinstance(max_tokens, int):
        raise NotDescribed(f"the Models API reports no max_tokens for {model_id}")
    return ModelInfo(
        model_id,
        frozenset(t for t in ThinkingType if _supported(types.get(t.value))),
        frozenset(e for e in Effort if _supported(effort.get(e.value)))
        if _supported(effort)
        else frozenset(),
        max_tokens=max_tokens,
        max_input_tokens=data.get("max_input_tokens"),
        structured_outputs=_supported(caps.get("structured_outputs")),
        source=source,
    )


class ModelCatalog:
    def __init__(
        self,
        table: ModelTable,
        client: ClientSource | None,
        cache: CapabilityCache | None = None,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        timeout_s: float = FETCH_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self._client_source = client  # a client, or what makes one when first asked
        self.client: anthropic.AsyncAnthropic | None = None
        if client is not None and not callable(client):
            self.client = client.with_options(max_retries=0)
        self.cache = cache
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._asked: set[str] = set()  # ids settled in this process
        self._offline = False  # a connection failed: do not make every run wait again
        self._warned = False
        self._lock = anyio.Lock()

    async def ensure(self, names: Iterable[str | None]) -> None:
        """Learn the capabilities of these models (aliases or ids), if not done yet here."""
        ids = {self.table.model_id(n) for n in names} - self._asked
        if not ids:
            return
        async with self._lock:
            todo = sorted(ids - self._asked)
            cached = await self.cache.load(todo) if self.cache is not None and todo else {}
            fresh = {i for i, (_, at) in cached.items() if self.clock() - at < self.max_age_s}
            for model_id in todo:
                if model_id in fresh:
                    self._learn(model_id, cached[model_id][0], Source.CACHE)
            fetched: dict[str, dict[str, Any]] = {}
            if todo and not fresh.issuperset(todo) and await self._connect() is not None:
                async with anyio.create_task_group() as tg:
                    for model_id in todo:
                        if model_id not in fresh:
                            tg.start_soon(self._fetch, model_id, fetched)
            now = self.clock()
            saved = [
                (i, data, now) for i, data in fetched.items() if self._learn(i, data, Source.API)
            ]
            for model_id in todo:  # stale, and the API did not answer: the old answer
                if model_id not in fresh and model_id not in fetched and model_id in cached:
                    self._learn(model_id, cached[model_id][0], Source.CACHE)
            if self.cache is not None:
                await self.cache.save(saved)
            self._asked.update(todo)

    async def refresh_all(self) -> list[str]:
        """Every model the API lists (`tutti models`), learned and cached; their ids."""
        client = await self._connect()
        if client is None:
            return []
        import anthropic

        found: dict[str, dict[str, Any]] = {}
        try:
            with anyio.fail_after(self.timeout_s * 4):
                async for info in client.models.list(limit=1000, timeout=self.timeout_s):
                    found[info.id] = info.model_dump(mode="json")
        except (anthropic.APIError, TimeoutError) as exc:
            self._warn(f"cannot list models from the Models API ({_why(exc)})")
            return []
        now = self.clock()
        saved = [(i, d, now) for i, d in found.items() if self._learn(i, d, Source.API)]
        if self.cache is not None:
            await self.cache.save(saved)
        self._asked.update(found)
        return list(found)

    async def load_cached(self) -> None:
        """Learn every cached answer, however old (`tutti models` without a key)."""
        if self.cache is None:
            return
        for model_id, (data, _) in (await self.cache.load()).items():
            if model_id not in self.table.learned:
                self._learn(model_id, data, Source.CACHE)

    async def _connect(self) -> anthropic.AsyncAnthropic | None:
        """The client, made now if it was given as what makes one."""
        if self.client is None and callable(self._client_source):
            self.client = (await self._client_source()).with_options(max_retries=0)
        return self.client

    async def _fetch(self, model_id: str, into: dict[str, dict[str, Any]]) -> None:
        if self._offline or self.client is None:
            return
        import anthropic

        try:
            with anyio.fail_after(self.timeout_s + 1):  # the SDK's timeout, bounded again
                info = await self.client.models.retrieve(model_id, timeout=self.timeout_s)
        except (anthropic.APIConnectionError, TimeoutError) as exc:
            self._offline = True
            self._warn(f"cannot reach the Models API ({_why(exc)})")
            return
        except anthropic.APIStatusError as exc:
            self._warn(f"the Models API did not describe {model_id} ({_why(exc)})")
            return
        into[model_id] = info.model_dump(mode="json")

    def _learn(self, model_id: str, data: Mapping[str, Any], source: Source) -> bool:
        try:
            self.table.learn(from_api(model_id, data, source))
        except NotDescribed as exc:
            self._warn(str(exc))
            return False
        return True

    def _warn(self, what: str) -> None:
        """Once per process at warning level: the table is a sound fallback, not an error."""
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "%s; using the shipped model table (engine/model_table.py)", what)


def _why(exc: BaseException) -> str:
    import anthropic

    if isinstance(exc, anthropic.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, TimeoutError | anthropic.APITimeoutError):
        return "timed out"
    return type(exc).__name__
