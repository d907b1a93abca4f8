"""The Anthropic client, made when a prompt step or the Models API first needs it.

Importing the SDK takes about a second here: `tutti serve` with an API key would spend it
before answering `initialize`, and `tutti run` of a spec without prompt steps for nothing.
The prompt executor and the model catalog take this object in place of a client
(engine/executors/prompt.py, ClientSource) and call it once; the import then runs in a
worker thread, so a server keeps answering other requests meanwhile."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    import anthropic


class AnthropicOnDemand:
    def __init__(self, api_key: str, base_url: str | None, max_retries: int) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.max_retries = max_retries
        self._client: anthropic.AsyncAnthropic | None = None

    async def __call__(self) -> anthropic.AsyncAnthropic:
        """The one client of this process, made on the first call."""
        if self._client is None:
            sdk = await anyio.to_thread.run_sync(import_module, "anthropic")
            if self._client is None:  # another caller may have made it while we waited
                self._client = sdk.AsyncAnthropic(
                    api_key=self.api_key, base_url=self.base_url, max_retries=self.max_retries
                )
        return self._client
