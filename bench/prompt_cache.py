"""Prompt caching on a fan-out: 10 parallel prompt steps sharing a 20,000-token context, on
the fake Messages API (tests/fake_anthropic.py, which accounts cache writes and reads like
the real API: an entry is readable once the call that wrote it is answered).

    uv run python bench/prompt_cache.py                 # 5 trials per variant, ~10 s
    uv run python bench/prompt_cache.py --trials 20 --latency 0.5

Variants, each trial on a fresh fake (an empty cache), in one process:
  no-cache    PromptExecutor(cache=False): the context is plain system text in every call
  cache-burst cache marks, every step sent at once (warm_cache=False): all ten write
  cache-warm  cache marks, the first call for the prefix alone, the rest once it is answered
              (the default)

Reported per variant: input tokens (uncached / cache writes / cache reads), the share of
input served from cache, the run's cost (claude-sonnet-5-5: $2 / $10 per MTok, cache
writes 1.25x and reads 0.1x input), its ratio to no-cache, and wall time. Raw rows and the
table go to bench/results/<stamp>-prompt-cache/.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import anthropic  # noqa: E402
from common import Recorder  # noqa: E402

from tests.fake_anthropic import FakeAnthropic, estimated  # noqa: E402
from tutti_mcp.engine.config import EngineConfig  # noqa: E402
from tutti_mcp.engine.executors.prompt import PromptExecutor  # noqa: E402
from tutti_mcp.engine.service import Engine  # noqa: E402
from tutti_mcp.engine.spec import ExecutorKind  # noqa: E402
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore  # noqa: E402

MODEL = "claude-sonnet-5-5"
STEPS = 10
CONTEXT_TOKENS = 20_000
OUTPUT_TOKENS = 200
VARIANTS: dict[str, dict[str, bool]] = {
    "no-cache": {"cache": False},
    "cache-burst": {"cache": True, "warm_cache": False},
    "cache-warm": {"cache": True, "warm_cache": True},
}


def context_document(tokens: int) -> str:
    """A contract-like document of about `tokens` tokens (chars/4)."""
    lines, chars, i = [], 0, 0
    while chars < tokens * 4:
        line = f"Clause {i}: the supplier delivers lot {i} within {i % 30 + 1} days of the order.\n"
        lines.append(line)
        chars += len(line)
        i += 1
    return "".join(lines)[: tokens * 4]


def spec() -> dict[str, Any]:
    return {
        "name": "prompt-cache-fan-out",
        "inputs": {"contract": {"type": "string"}},
        "defaults": {"model": MODEL, "thinking": "instant"},
        "steps": [
            {
                "id": f"q{i}",
                "context": ["${inputs.contract}"],
                "system": "Answer from the contract only; cite clause numbers.",
                "prompt": f"Question {i}: which clauses bind lot {i * 7}?",
            }
            for i in range(STEPS)
        ],
    }


async def trial(variant: str, doc: str, latency_s: float) -> dict[str, Any]:
    fake = FakeAnthropic(
        default=estimated("Clauses 7 and 12.", output_tokens=OUTPUT_TOKENS, delay_s=latency_s)
    ).start()
    try:
        async with anthropic.AsyncAnthropic(
            api_key="bench", base_url=fake.base_url, max_retries=0
        ) as client:
            engine = Engine(
                InMemoryRunStore(),
                {ExecutorKind.PROMPT: PromptExecutor(client, **VARIANTS[variant])},
                EngineConfig(),
            )
            started = time.perf_counter()
            record = await engine.run(spec(), inputs={"contract": doc})
            wall = time.perf_counter() - started
    finally:
        fake.stop()
    m = record.metrics or {}
    tok = m.get("tokens") or {}
    writers = sum(
        1 for s in record.steps.values() if (s.usage or {}).get("cache_creation_input_tokens")
    )
    return {
        "variant": variant,
        "status": record.status.value,
        "wall_s": wall,
        "requests": len(fake.requests),
        "input_tokens": tok.get("input_tokens", 0),
        "cache_write_tokens": tok.get("cache_creation_input_tokens", 0),
        "cache_read_tokens": tok.get("cache_read_input_tokens", 0),
        "output_tokens": tok.get("output_tokens", 0),
        "cache_share": m.get("cache_share") or 0.0,
        "cost_usd": m.get("cost_usd"),
        "steps_writing": writers,
    }


def table(rows: list[dict[str, Any]], trials: int, latency_s: float) -> str:
    base = statistics.median(r["cost_usd"] for r in rows if r["variant"] == "no-cache")
    out = [
        f"PROMPT CACHE: {STEPS}-step fan-out sharing a {CONTEXT_TOKENS:,}-token context, "
        f"{MODEL} prices, fake API with {latency_s:g} s per call; {trials} trials per variant "
        "(medians)",
        f"{'variant':<12} {'ok/trials':>9} {'uncached in':>11} {'cache write':>11} "
        f"{'cache read':>10} {'share':>6} {'writers':>7} {'cost $':>8} {'x no-cache':>10} "
        f"{'wall s':>7}",
    ]
    for variant in VARIANTS:
        rs = [r for r in rows if r["variant"] == variant]
        ok = sum(1 for r in rs if r["status"] == "succeeded")

        def med(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return float(statistics.median(r[key] for r in rs))

        cost = med("cost_usd")
        out.append(
            f"{variant:<12} {f'{ok}/{len(rs)}':>9} {med('input_tokens'):>11,.0f} "
            f"{med('cache_write_tokens'):>11,.0f} {med('cache_read_tokens'):>10,.0f} "
            f"{med('cache_share'):>6.1%} {med('steps_writing'):>7.0f} {cost:>8.4f} "
            f"{cost / base:>10.3f} {med('wall_s'):>7.3f}"
        )
    out.append(
        "  share = cache reads / all input tokens (uncached + writes + reads); writers = steps "
        "whose call wrote the cache; cost includes the output tokens "
        f"({STEPS} x {OUTPUT_TOKENS})"
    )
    return "\n".join(out)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per fake API call")
    args = ap.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = BENCH / "results" / f"{stamp}-prompt-cache"
    rec = Recorder(out_dir / "raw.jsonl")
    doc = context_document(CONTEXT_TOKENS)
    for n in range(args.trials):
        for variant in VARIANTS:  # interleaved, so drift touches every variant alike
            rec.add({"trial": n, **await trial(variant, doc, args.latency)})
    text = table(rec.rows, args.trials, args.latency)
    print(text)
    (out_dir / "table.txt").write_text(text + "\n", encoding="utf-8")
    print(f"\nraw: {out_dir / 'raw.jsonl'}")


if __name__ == "__main__":
    asyncio.run(main())
