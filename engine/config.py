"""What an engine is configured with: model table and catalog, where model steps run,
concurrency caps, workspace, polling interval, and the clock and randomness (injected, so
tests can drive them)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tutti_mcp.engine.model_catalog import ModelCatalog
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.memory.files.async_store import AsyncMemoryFiles


@dataclass
class EngineConfig:
    models: ModelTable = field(default_factory=ModelTable)
    # Asks the Models API about the models a run uses (None: the table alone decides).
    catalog: ModelCatalog | None = None
    # Where steps that need a model run when they do not say (`run:`): prompt or client.
    model_executor: ExecutorKind = ExecutorKind.PROMPT
    max_concurrency: int = 64
    executor_limits: dict[ExecutorKind, int] = field(
        default_factory=lambda: {
            ExecutorKind.PROMPT: 8,
            ExecutorKind.SHELL: 8,
            ExecutorKind.SAMPLING: 4,
        }
    )
    workspace: Path = field(default_factory=Path.cwd)
    client_poll_s: float = 1.0
    max_foreach_items: int = 10_000  # instances one `foreach` step may add to a run
    pipeline_keep: int = 1_000  # rows of finished items a pipeline step keeps (TUTTI_PIPELINE_KEEP)
    memory: AsyncMemoryFiles | None = None  # the memory store (pipeline memory sinks write to)
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    # Said when a model step has no executor: how to configure one.
    missing_model_hint: str = (
        "set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a proxy) to run them on the Anthropic "
        "API, or set `run: client` on those steps (or `defaults.model_executor: client`) to hand "
        "them to the calling client"
    )
