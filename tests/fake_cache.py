"""The fake Messages API's prompt-cache accounting and structured outputs
(tests/fake_anthropic.py uses them).

Caching follows the real API's rules where they matter to tutti: the prompt is read in the
order tools, system, messages; each block marked `cache_control` ends a cacheable prefix,
keyed by the model and the prefix's content; the longest prefix already cached is read,
and longer marked prefixes of at least `min_tokens` are written. An entry becomes readable
once the request that wrote it is answered. Tokens are estimated as chars/4, the same
estimate tutti uses to decide what to cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


def tokens(chars: int) -> int:
    return (chars + 3) // 4


def _block_chars(block: Any) -> int:
    if isinstance(block, str):
        return len(block)
    if isinstance(block, dict) and block.get("type") == "text":
        return len(str(block.get("text", "")))
    if isinstance(block, dict):
        return len(json.dumps({k: v for k, v in block.items() if k != "cache_control"}))
    return len(json.dumps(block))


def prompt_blocks(body: dict[str, Any]) -> list[Any]:
    """Every block of the prompt, in the order the cache reads them."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, str):
        blocks.append(system)
    elif isinstance(system, list):
        blocks += system
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        blocks += [content] if isinstance(content, str) else list(content or [])
    return blocks


@dataclass
class CacheUse:
    """What one request reads from and writes to the cache (decided on arrival)."""

    total: int = 0  # all prompt tokens
    read: int = 0
    written: int = 0
    new_keys: list[str] = field(default_factory=list)

    def usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.total - self.read - self.written,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": self.written,
            "cache_read_input_tokens": self.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.written,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens_details": {"thinking_tokens": 0},
        }


class PromptCache:
    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self.ready: set[str] = set()

    def lookup(self, body: dict[str, Any]) -> CacheUse:
        blocks = prompt_blocks(body)
        digest = hashlib.sha256(str(body.get("model")).encode())
        chars = 0
        marks: list[tuple[str, int]] = []  # (prefix key, prefix tokens) at each breakpoint
        for block in blocks:
            digest.update(
                json.dumps(
                    {k: v for k, v in block.items() if k != "cache_control"}
                    if isinstance(block, dict)
                    else block,
                    sort_keys=True,
                ).encode()
            )
            chars += _block_chars(block)
            if isinstance(block, dict) and block.get("cache_control"):
                marks.append((digest.copy().hexdigest(), tokens(chars)))
        use = CacheUse(total=tokens(chars))
        hit = max((n for key, n in marks if key in self.ready), default=0)
        use.read = hit
        longest = max((n for key, n in marks if n > hit and n >= self.min_tokens), default=0)
        if longest:
            use.written = longest - hit
            use.new_keys = [key for key, n in marks if hit < n <= longest]
        return use

    def answered(self, use: CacheUse) -> None:
        self.ready.update(use.new_keys)


# -- structured outputs ------------------------------------------------------------------------
def schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = (body.get("output_config") or {}).get("format")
    return fmt.get("schema") if isinstance(fmt, dict) else None


def output_format_problem(body: dict[str, Any]) -> str | None:
    """The real API's kind of 400 for a malformed `output_config.format`, else None."""
    fmt = (body.get("output_config") or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return "output_config.format.type: Input should be 'json_schema'"
    if not isinstance(fmt.get("schema"), dict):
        return "output_config.format.schema: Field required"
    return None


def instance_of(schema: dict[str, Any]) -> Any:
    """A small value that the schema accepts (the fake's default structured answer)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: instance_of(props.get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        n = int(schema.get("minItems", 0))
        return [instance_of(schema.get("items") or {}) for _ in range(n)]
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "null": None}.get(
        str(kind), {}
    )
