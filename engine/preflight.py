"""Before anything runs: every step's executor is available here and can do the step (a
program allowed, a model that fits its thinking setting, a price under a cost budget, tools
where the model can be given them)."""

from __future__ import annotations

from collections.abc import Mapping

from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.executors.base import StepExecutor
from tutti_mcp.engine.model_checks import api_step_problems
from tutti_mcp.engine.modes.pipeline.preflight import pipeline_problems
from tutti_mcp.engine.modes.swarm.compile import CALLER
from tutti_mcp.engine.spec import ExecutorKind
from tutti_mcp.engine.workflow import Workflow


def preflight(
    wf: Workflow, executors: Mapping[ExecutorKind, StepExecutor], config: EngineConfig
) -> None:
    """Fail before anything runs when a step's executor is not available here."""
    problems = _problems(wf, executors, config)
    if problems:
        raise ConfigurationError(
            "cannot run this workflow:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _problems(
    wf: Workflow, executors: Mapping[ExecutorKind, StepExecutor], config: EngineConfig
) -> list[str]:
    """The workflow's problems here, and its loops' steps' (named in their loop)."""
    problems = []
    missing: dict[ExecutorKind, list[str]] = {}
    for sid in wf.order:
        kind = wf.executors[sid]
        if kind not in executors and sid != CALLER:  # escalation: checked when it happens
            missing.setdefault(kind, []).append(sid)
    for kind, sids in missing.items():
        names = ", ".join(sids)
        if kind is ExecutorKind.PROMPT:
            problems.append(
                f"steps {names} need a model and none is configured: {config.missing_model_hint}"
            )
        elif kind is ExecutorKind.SHELL:
            problems.append(
                f"steps {names} run shell commands, which are off here: set TUTTI_ALLOW_SHELL to "
                "the programs to allow (e.g. TUTTI_ALLOW_SHELL=git,wc or '*'); for the MCP "
                "server, in the `env` of its entry in the client's configuration"
            )
        else:
            problems.append(
                f"steps {names} need the {kind.value} executor, which is not available here"
            )
    for sid in wf.order:
        step = wf.steps[sid]
        if wf.executors[sid] is ExecutorKind.SAMPLING and step.tools:
            problems.append(
                f"step {sid!r} has tools ({', '.join(step.tools)}), but MCP sampling offers the "
                "model no tools: set `run: prompt` (with ANTHROPIC_API_KEY) to give it the "
                "toolbox, or `run: client` to hand the step to the calling agent"
            )
    for sid in wf.order:  # what each executor cannot do (a program not allowed, memory)
        checker = getattr(executors.get(wf.executors[sid]), "check_step", None)
        msg = checker(wf.steps[sid]) if checker is not None else None
        if msg:
            problems.append(f"step {sid!r}: {msg}")
    problems += api_step_problems(wf, config.models)
    for sid in wf.order:  # a pipeline's stages, source and sink
        pipeline = wf.steps[sid].pipeline
        if pipeline is not None:
            problems += pipeline_problems(sid, pipeline, wf.spec, executors, config)
    for loop, body in wf.bodies.items():
        what = "swarm" if wf.steps[loop].swarm is not None else "loop"
        problems += [f"in {what} {loop!r}: {p}" for p in _problems(body, executors, config)]
    for sid, child in wf.children.items():
        problems += [
            f"in the workflow of {sid!r}: {p}" for p in _problems(child, executors, config)
        ]
    return problems
