"""Workflows inside a workflow, compiled with it: a loop's steps (a workflow of their own
that may read the outer workflow's steps) and a `workflow` step's inline child. Their
problems are reported with their path from the top of the spec.

`compile` is engine.workflow.compile_workflow, passed in (it calls these)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any, TypeVar

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.spec import Step, WorkflowSpec

W = TypeVar("W")
NOT_IN_LOOPS = ("foreach", "loop", "workflow", "swarm", "pipeline")


def loop_body(
    s: Step,
    where: str,
    spec: WorkflowSpec,
    steps: Mapping[str, Step],
    compile: Callable[..., W],
    problems: list[Problem],
) -> W | None:
    """A loop's steps compiled as a workflow of their own, which may read the workflow's
    other steps (not the loop itself) and `loop`; None when they have problems."""
    assert s.loop is not None
    inner = s.loop.steps
    found = len(problems)
    for j, t in enumerate(inner):
        if t.id in steps:
            problems.append(
                Problem(f"{where}.loop.steps[{j}].id", f"step id {t.id!r} is also a step outside")
            )
        nested = [n for n in NOT_IN_LOOPS if getattr(t, n) is not None]
        if nested:
            problems.append(
                Problem(
                    f"{where}.loop.steps[{j}] ({t.id})",
                    f"`{nested[0]}` is not supported inside a loop yet; make it a step of its "
                    "own before or after the loop",
                )
            )
    sub = spec.model_copy(update={"steps": inner, "name": f"{spec.name}/{s.id}"})
    outer: dict[str, Step | None] = {sid: st for sid, st in steps.items() if sid != s.id}
    outer["loop"] = None
    try:
        body = compile(sub, outer=outer)
    except SpecError as exc:
        problems += [Problem(f"{where}.loop.{p.path}", p.message) for p in exc.problems]
        return None
    return body if len(problems) == found else None


def child_workflow(
    s: Step, where: str, compile: Callable[..., W], problems: list[Problem]
) -> W | None:
    """A `workflow` step's child: compiled now when inline (its inputs checked against what
    it declares); a file is read when the step runs, so only its path is checked here."""
    child = s.workflow
    if isinstance(child, str):
        path = PurePosixPath(child)
        if not child.strip() or path.is_absolute() or ".." in path.parts:
            problems.append(
                Problem(
                    f"{where}.workflow",
                    f"{child!r} must be a spec file's path relative to the workspace "
                    "(no .., not absolute)",
                )
            )
        return None
    assert child is not None
    problems += _input_problems(s.inputs, child, where)
    try:
        return compile(child)
    except SpecError as exc:
        problems += [Problem(f"{where}.workflow.{p.path}", p.message) for p in exc.problems]
        return None


def _input_problems(given: Mapping[str, Any], child: WorkflowSpec, where: str) -> list[Problem]:
    declared = child.inputs
    out = [
        Problem(
            f"{where}.inputs.{name}",
            f"the child workflow declares no input {name!r}"
            + (f"; it takes: {', '.join(declared)}" if declared else "; it takes none"),
        )
        for name in given
        if name not in declared
    ]
    missing = [
        n
        for n, spec in declared.items()
        if spec.required and spec.default is None and n not in given
    ]
    if missing:
        out.append(
            Problem(f"{where}.inputs", f"the child workflow needs {', '.join(missing)}: give them")
        )
    return out
