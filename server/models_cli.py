"""`tutti models`: every model tutti knows, with its capabilities, prices and where they came
from (api, cache, table, override); `--table` prints what each thinking mode sends to each
model (the table in README.md is this output for the shipped table)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import anyio
from rich.table import Table

from tutti_mcp.engine.model_catalog import ModelCatalog
from tutti_mcp.engine.model_info import EFFORT_ORDER, ModelInfo, ThinkingType
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.spec import MODEL_KINDS, ThinkingMode, WorkflowSpec, every_step
from tutti_mcp.engine.thinking import ThinkingError, thinking_params
from tutti_mcp.memory.model_cache import ModelCache
from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore
from tutti_mcp.server.console import out, print_table
from tutti_mcp.server.settings import Settings, model_catalog

MODES = (ThinkingMode.INSTANT, ThinkingMode.STANDARD, ThinkingMode.EXTENDED)


def cmd_models(args: argparse.Namespace) -> int:
    settings = Settings.from_env(db=args.db)
    table = anyio.run(_learned_table, settings)
    if args.table:
        out.print(thinking_table(table), markup=False)
    elif args.json:
        out.print_json(data={"models": table.describe()})
    else:
        print_models(table)
    return 0


async def _learned_table(
    settings: Settings, names: Iterable[str | None] | None = None
) -> ModelTable:
    """The table with overrides, and what the Models API says (with a key: about `names`,
    or every model it lists) or said before (from the database's cache)."""
    table = ModelTable.from_file(settings.models_file)
    db = settings.db_path
    if not settings.api_key and (str(db) == ":memory:" or not db.exists()):
        return table  # nothing cached, nothing to ask
    async with await SqliteRunStore.open(db) as store:
        cache = ModelCache.of(store)
        if settings.api_key:
            import anthropic

            async with anthropic.AsyncAnthropic(
                api_key=settings.api_key, base_url=settings.base_url
            ) as client:
                catalog = model_catalog(settings, table, store, client)
                await (catalog.refresh_all() if names is None else catalog.ensure(names))
                await catalog.load_cached()
        else:
            await ModelCatalog(table, None, cache).load_cached()
    return table


def plan_table(settings: Settings, spec: WorkflowSpec) -> ModelTable:
    """The model table `tutti plan` plans with: what a run of `spec` would learn."""
    names = [
        s.model or spec.defaults.model for s in every_step(spec.steps) if s.executor in MODEL_KINDS
    ]
    return anyio.run(_learned_table, settings, names)


def _prices(info: ModelInfo) -> str:
    p = info.prices
    if p is None:
        return "unknown"
    return (
        f"{p.input:g} / {p.output:g}; cache write {p.cache_write_5m:g} (5m) "
        f"{p.cache_write_1h:g} (1h), read {p.cache_read:g}"
    )


def print_models(table: ModelTable) -> None:
    view = Table(title="models (prices: USD per million tokens, input / output)")
    for col in ("model", "aliases", "source", "thinking", "effort", "max out", "context", "prices"):
        view.add_column(col, overflow="fold")
    for row in table.describe():
        info = table.resolve(row["id"])
        view.add_row(
            info.id,
            ", ".join(row["aliases"]),
            info.source.value,
            ", ".join(t.value for t in ThinkingType if t in info.thinking_types) or "-",
            ", ".join(e.value for e in EFFORT_ORDER if e in info.efforts) or "-",
            str(info.max_tokens),
            "-" if info.max_input_tokens is None else str(info.max_input_tokens),
            _prices(info),
        )
    print_table(view)


def describe_params(params: dict[str, Any]) -> str:
    """One cell: the thinking type, effort or budget, and max_tokens."""
    thinking = params.get("thinking")
    parts = [f"`{thinking['type']}`" if thinking else "no `thinking`"]
    if thinking and "budget_tokens" in thinking:
        parts.append(f"budget {thinking['budget_tokens']}")
    effort = (params.get("output_config") or {}).get("effort")
    if effort:
        parts.append(f"effort {effort}")
    return ", ".join(parts) + f"; max_tokens {params['max_tokens']}"


def thinking_table(table: ModelTable) -> str:
    """Model x thinking mode -> the parameters sent (a step without its own max_tokens)."""
    names: dict[str, list[str]] = {}
    for alias, target in table.aliases.items():
        names.setdefault(target, []).append(f"`{alias}`")
    lines = [
        "| model | instant | standard | extended |",
        "|---|---|---|---|",
    ]
    for model_id in table.known_ids():
        info = table.resolve(model_id)
        cells = []
        for mode in MODES:
            try:
                cells.append(describe_params(thinking_params(mode, info, None).params))
            except ThinkingError as exc:
                cells.append(f"refused: {exc}")
        label = model_id + (f" ({', '.join(names[model_id])})" if model_id in names else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
