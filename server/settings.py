"""Settings, read from the environment, and the engine they configure.

| variable | meaning | default |
|---|---|---|
| ANTHROPIC_API_KEY | key for prompt steps on the Anthropic API | unset: prompt steps cannot run here |
| ANTHROPIC_BASE_URL | another endpoint for the Messages API | the SDK's |
| TUTTI_DB | the SQLite database file | user data dir / tutti.db |
| TUTTI_ALLOW_SHELL | programs shell steps may run outside the CLI (`git,wc` or `*`) | none |
| TUTTI_MODELS | JSON file overriding model aliases, capabilities, prices | built-in table |
| TUTTI_MODELS_REFRESH_HOURS | age after which a model's cached Models API answer is asked again | 24 |
| TUTTI_MAX_CONCURRENCY | global cap on steps running at once | 64 |
| TUTTI_MAX_FOREACH_ITEMS | most instances one `foreach` step may add to a run | 10000 |
| TUTTI_PIPELINE_KEEP | rows of finished items a pipeline step with a file sink keeps in the database | 1000 |
| TUTTI_API_RETRIES | SDK retries per model call on 429/529/5xx | 2 |
| TUTTI_SHELL_MAX_OUTPUT | bytes a shell step may print | 1000000 |
| TUTTI_MODEL_EXECUTOR | where model steps run when the spec does not say: prompt, client or sampling | prompt with an API key, else client (`tutti serve`) |
| TUTTI_LOG_LEVEL | log level on stderr (`tutti serve`) | WARNING |
| TUTTI_MAX_SPEC_BYTES | largest spec file or text accepted, in bytes (also caps values after YAML aliases) | 1048576 |
| TUTTI_MAX_SPEC_DEPTH | deepest nesting of mappings and lists a spec may have | 64 |
| TUTTI_WORKSPACE | the directory shell steps run in and spec paths are relative to (`tutti serve`) | the current directory |
| TUTTI_TASK_TTL_S | the most seconds an MCP task is kept (a client may ask for less; 0: as long as its run) | 86400 |
| TUTTI_TASK_POLL_MS | the polling interval MCP tasks suggest to clients, in milliseconds | 500 |
| TUTTI_BACKEND | where runs execute: `embedded` (this process, SQLite) or `temporal` (a Temporal cluster and `tutti worker` processes) | embedded |
| TUTTI_TEMPORAL_ADDRESS | the Temporal frontend (host:port) | 127.0.0.1:7233 |
| TUTTI_TEMPORAL_NAMESPACE | the Temporal namespace runs live in | default |
| TUTTI_TEMPORAL_TASK_QUEUE | the task queue the runs and their steps are put on | tutti |
| TUTTI_TEMPORAL_HEARTBEAT_S | seconds a worker may be silent during a step before another worker takes the step over | 30 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.executors.shell import DEFAULT_MAX_OUTPUT
from tutti_mcp.engine.spec import MODEL_KINDS, ExecutorKind
from tutti_mcp.engine.spec_source import DEFAULT_MAX_SPEC_BYTES, DEFAULT_MAX_SPEC_DEPTH, SpecLimits

if TYPE_CHECKING:
    from tutti_mcp.engine.executors.base import StepExecutor
    from tutti_mcp.engine.executors.prompt import ClientSource
    from tutti_mcp.engine.model_catalog import ModelCatalog
    from tutti_mcp.engine.models import ModelTable
    from tutti_mcp.engine.service import Engine
    from tutti_mcp.memory.files.async_store import AsyncMemoryFiles
    from tutti_mcp.memory.runs.store import RunStore


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("tutti", appauthor=False)) / "tutti.db"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value}")
    return value


def _nonnegative(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise ConfigurationError(f"{name} must be an integer >= 0, got {value}")
    return value


def _hours(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise ConfigurationError(f"{name} must be a number of hours >= 0, got {raw!r}")
    return value


def _executor(raw: str | None) -> ExecutorKind | None:
    if not raw:
        return None
    try:
        kind = ExecutorKind(raw.strip().lower())
    except ValueError:
        kind = None
    if kind not in MODEL_KINDS:
        raise ConfigurationError(
            f"TUTTI_MODEL_EXECUTOR must be prompt, client or sampling, got {raw!r}"
        )
    return kind


BACKENDS = ("embedded", "temporal")


def _backend(raw: str | None) -> str:
    value = (raw or "embedded").strip().lower()
    if value not in BACKENDS:
        raise ConfigurationError(f"TUTTI_BACKEND must be embedded or temporal, got {raw!r}")
    return value


@dataclass(frozen=True)
class TemporalSettings:
    """Where the Temporal backend's runs live and which workers take their steps."""

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "tutti"
    heartbeat_s: int = 30


@dataclass(frozen=True)
class Settings:
    db_path: Path
    api_key: str | None = None
    base_url: str | None = None
    allow_shell: frozenset[str] = field(default_factory=frozenset)
    models_file: str | None = None
    models_refresh_hours: float = 24.0
    max_concurrency: int = 64
    max_foreach_items: int = 10_000
    pipeline_keep: int = 1_000
    api_retries: int = 2
    shell_max_output: int = DEFAULT_MAX_OUTPUT
    model_executor: ExecutorKind | None = None
    workspace: Path | None = None
    max_spec_bytes: int = DEFAULT_MAX_SPEC_BYTES
    max_spec_depth: int = DEFAULT_MAX_SPEC_DEPTH
    task_ttl_s: int = 86_400
    task_poll_ms: int = 500
    backend: str = "embedded"
    temporal: TemporalSettings = field(default_factory=lambda: TemporalSettings())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, db: str | None = None) -> Settings:
        env = os.environ if env is None else env
        allow = frozenset(
            p.strip() for p in env.get("TUTTI_ALLOW_SHELL", "").split(",") if p.strip()
        )
        return cls(
            db_path=Path(db or env.get("TUTTI_DB") or default_db_path()).expanduser(),
            api_key=env.get("ANTHROPIC_API_KEY") or None,
            base_url=env.get("ANTHROPIC_BASE_URL") or None,
            allow_shell=allow,
            models_file=env.get("TUTTI_MODELS") or None,
            models_refresh_hours=_hours(env, "TUTTI_MODELS_REFRESH_HOURS", 24.0),
            max_concurrency=_int(env, "TUTTI_MAX_CONCURRENCY", 64),
            max_foreach_items=_int(env, "TUTTI_MAX_FOREACH_ITEMS", 10_000),
            pipeline_keep=_nonnegative(env, "TUTTI_PIPELINE_KEEP", 1_000),
            api_retries=_int(env, "TUTTI_API_RETRIES", 2),
            shell_max_output=_int(env, "TUTTI_SHELL_MAX_OUTPUT", DEFAULT_MAX_OUTPUT),
            model_executor=_executor(env.get("TUTTI_MODEL_EXECUTOR")),
            workspace=Path(env["TUTTI_WORKSPACE"]).expanduser()
            if env.get("TUTTI_WORKSPACE")
            else None,
            max_spec_bytes=_positive(env, "TUTTI_MAX_SPEC_BYTES", DEFAULT_MAX_SPEC_BYTES),
            max_spec_depth=_positive(env, "TUTTI_MAX_SPEC_DEPTH", DEFAULT_MAX_SPEC_DEPTH),
            task_ttl_s=_nonnegative(env, "TUTTI_TASK_TTL_S", 86_400),
            task_poll_ms=_positive(env, "TUTTI_TASK_POLL_MS", 500),
            backend=_backend(env.get("TUTTI_BACKEND")),
            temporal=TemporalSettings(
                address=env.get("TUTTI_TEMPORAL_ADDRESS") or "127.0.0.1:7233",
                namespace=env.get("TUTTI_TEMPORAL_NAMESPACE") or "default",
                task_queue=env.get("TUTTI_TEMPORAL_TASK_QUEUE") or "tutti",
                heartbeat_s=_positive(env, "TUTTI_TEMPORAL_HEARTBEAT_S", 30),
            ),
        )

    @property
    def spec_limits(self) -> SpecLimits:
        return SpecLimits(max_bytes=self.max_spec_bytes, max_depth=self.max_spec_depth)

    @property
    def default_model_executor(self) -> ExecutorKind:
        """Where model steps run when neither the spec nor TUTTI_MODEL_EXECUTOR says: on the
        API when a key is set, else handed to the calling client."""
        if self.model_executor is not None:
            return self.model_executor
        return ExecutorKind.PROMPT if self.api_key else ExecutorKind.CLIENT


def build_engine(
    settings: Settings,
    store: RunStore,
    *,
    shell_allow_all: bool = False,
    model_executor: ExecutorKind | None = None,
    workspace: Path | None = None,
    extra_executors: Mapping[ExecutorKind, StepExecutor] | None = None,
    memory: AsyncMemoryFiles | None = None,
) -> Engine:
    """The engine with every executor these settings allow. `shell_allow_all` is for the
    CLI running a file its user gave it; the server relies on TUTTI_ALLOW_SHELL. `memory`
    backs the memory tool of prompt steps with `memory:` (without it they are refused)."""
    # imported here: the commands that only read settings (`tutti memory`) need no engine
    from tutti_mcp.engine.config import EngineConfig
    from tutti_mcp.engine.executors.builtin import BuiltinExecutor
    from tutti_mcp.engine.executors.client import ClientExecutor
    from tutti_mcp.engine.executors.gate import GateExecutor
    from tutti_mcp.engine.executors.shell import ShellExecutor
    from tutti_mcp.engine.models import ModelTable
    from tutti_mcp.engine.service import Engine

    models = ModelTable.from_file(settings.models_file)
    executors: dict[ExecutorKind, StepExecutor] = {
        ExecutorKind.BUILTIN: BuiltinExecutor(),
        ExecutorKind.CLIENT: ClientExecutor(),
        ExecutorKind.GATE: GateExecutor(),  # asks by elicitation where the server adds one
    }
    shell = None
    if shell_allow_all or settings.allow_shell:
        allow = None if shell_allow_all else settings.allow_shell
        shell = ShellExecutor(allow, settings.shell_max_output)
        executors[ExecutorKind.SHELL] = shell
    catalog = None
    if settings.api_key:
        from tutti_mcp.engine.executors.prompt import PromptExecutor
        from tutti_mcp.engine.toolbox.bash import ShellAccess
        from tutti_mcp.server.api_client import AnthropicOnDemand

        # the SDK is loaded when a prompt step or the Models API first needs it
        client = AnthropicOnDemand(settings.api_key, settings.base_url, settings.api_retries)
        # the agents' bash tool: the shell steps' policy; under the CLI (every program
        # allowed for its user's own steps) only the programs the file's grants name
        access = ShellAccess(shell.policy if shell else None, named_only=shell_allow_all)
        executors[ExecutorKind.PROMPT] = PromptExecutor(client, models, memory=memory, shell=access)
        catalog = model_catalog(settings, models, store, client)
    executors.update(extra_executors or {})
    config = EngineConfig(
        models=models,
        catalog=catalog,
        model_executor=model_executor or ExecutorKind.PROMPT,
        max_concurrency=settings.max_concurrency,
        max_foreach_items=settings.max_foreach_items,
        pipeline_keep=settings.pipeline_keep,
        memory=memory,
        workspace=workspace or Path.cwd(),
    )
    return Engine(store, executors, config)


def model_catalog(
    settings: Settings, models: ModelTable, store: RunStore | None, client: ClientSource
) -> ModelCatalog:
    """The Models API behind `models`, cached in the store's database when it has one."""
    from tutti_mcp.engine.model_catalog import ModelCatalog
    from tutti_mcp.memory.model_cache import ModelCache
    from tutti_mcp.memory.runs.sqlite_store import SqliteRunStore

    cache = ModelCache.of(store) if isinstance(store, SqliteRunStore) else None
    return ModelCatalog(models, client, cache, max_age_s=settings.models_refresh_hours * 3600)
