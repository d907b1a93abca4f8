"""Before a run starts: every stage of a pipeline step can run here (its executor is
available and allows what the stage asks), and so can its source and sink."""

from __future__ import annotations

from collections.abc import Mapping

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.modes.pipeline.spec import PipelineSpec
from tutti_mcp.engine.spec import BuiltinOp, ExecutorKind, WorkflowSpec
from tutti_mcp.engine.workflow import resolved_executor

MEMORY_OFF = (
    "pipeline sink `memory` writes to the memory store, and this engine has none (the "
    "server and `tutti run` have one with their database); use `sink: {jsonl: PATH}` "
    "(a workspace file) or the step's output"
)
SHELL_OFF = (
    "shell commands are off here: set TUTTI_ALLOW_SHELL to the programs to allow (e.g. "
    "TUTTI_ALLOW_SHELL=git,wc or '*')"
)


def pipeline_problems(
    sid: str,
    p: PipelineSpec,
    spec: WorkflowSpec,
    executors: Mapping[ExecutorKind, StepExecutor],
    config: EngineConfig,
) -> list[str]:
    out: list[str] = []
    if p.source.command is not None and ExecutorKind.SHELL not in executors:
        out.append(f"step {sid!r}: its source runs a command, and {SHELL_OFF}")
    if p.sink.memory is not None and config.memory is None:
        out.append(f"step {sid!r}: {MEMORY_OFF}")
    for stage in p.stages:
        kind = resolved_executor(stage.step, spec, config.model_executor)
        where = f"step {sid!r}, stage {stage.id!r}"
        if kind not in executors:
            if kind is ExecutorKind.BUILTIN and stage.step.builtin_op is not BuiltinOp.WAIT:
                continue  # transforms run without the executor
            why = {
                ExecutorKind.PROMPT: f"needs a model and none is configured: "
                f"{config.missing_model_hint}",
                ExecutorKind.SHELL: f"runs a shell command, and {SHELL_OFF}",
            }.get(kind, f"needs the {kind.value} executor, which is not available here")
            out.append(f"{where} {why}")
        else:
            checker = getattr(executors[kind], "check_step", None)
            msg = checker(stage.step) if checker is not None else None
            if msg:
                out.append(f"{where}: {msg}")
    return out
