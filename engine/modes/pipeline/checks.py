"""What validation says about a pipeline step beyond its fields' shapes: each stage can run
(a shell stage names a program, a model stage has a prompt), stage ids do not shadow the
workflow's steps, and what its templates read of its own (`${item}`, `${item_index}`, an
earlier stage's `${STAGE.output}`) is read where it means something. References to the
workflow's inputs and steps are checked by engine.workflow like any step's, and the steps
read become the pipeline step's dependencies."""

from __future__ import annotations

import re

from tutti_mcp.engine.errors import Problem
from tutti_mcp.engine.modes.pipeline.client_batches import MAX_CLIENT_BATCH
from tutti_mcp.engine.modes.pipeline.spec import ITEM_WORDS, PipelineSpec
from tutti_mcp.engine.spec_parts import BuiltinOp, ExecutorKind
from tutti_mcp.engine.templating import Reference

_STAGE_FIELD = re.compile(r"^pipeline\.stages\[(\d+)\]\.(.*)$")
OUTPUT_FIELDS = ("output", "results", "status")


def pipeline_problems(p: PipelineSpec, where: str, step_ids: list[str]) -> list[Problem]:
    """Each stage as a step, and its id against the workflow's step ids."""
    out: list[Problem] = []
    for i, stage in enumerate(p.stages):
        at = f"{where}.pipeline.stages[{i}] ({stage.id})"
        step, kind = stage.step, stage.executor
        if stage.id in step_ids:
            out.append(
                Problem(
                    f"{at}.id",
                    f"stage id {stage.id!r} is also a step of the workflow; rename one "
                    f"(${{{stage.id}.output}} would be ambiguous)",
                )
            )
        if kind is ExecutorKind.SHELL and not step.shell_argv:
            out.append(Problem(at, "a shell stage needs `argv` or `command` naming the program"))
        if kind in (ExecutorKind.PROMPT, ExecutorKind.CLIENT, ExecutorKind.SAMPLING) and not (
            step.prompt or step.args
        ):
            out.append(Problem(at, f"a {kind.value} stage needs `prompt` or `args`"))
        if (
            kind is ExecutorKind.BUILTIN
            and step.builtin_op is BuiltinOp.JSON
            and step.value is None
        ):
            out.append(Problem(at, "builtin op 'json' needs `value`"))
        batched = stage.batch is not None and stage.batch > 1
        # a model stage without `run` goes where model steps go: the client, with no key
        to_client = kind is ExecutorKind.CLIENT or (kind is ExecutorKind.PROMPT and not stage.run)
        if batched and not to_client and kind is not ExecutorKind.BUILTIN:
            out.append(
                Problem(
                    f"{at}.batch",
                    f"`batch` hands several items to one client task; a {kind.value} stage "
                    "works one item per call (use `concurrency` to run more at once)",
                )
            )
        elif to_client and (stage.batch or 0) > MAX_CLIENT_BATCH:
            out.append(
                Problem(
                    f"{at}.batch",
                    f"a client task lists at most {MAX_CLIENT_BATCH} items (each with its "
                    f"prompt); got batch {stage.batch}",
                )
            )
    return out


def pipeline_ref_problems(
    p: PipelineSpec | None, ref: Reference, field: str, where: str
) -> list[Problem] | None:
    """What is wrong with a name of the pipeline's own (`item`, `item_index`, a stage id
    in a stage) read in `field`; None when the name is not the pipeline's."""
    m = _STAGE_FIELD.match(field)
    if p is None or ref.name not in (p.names if m else ITEM_WORDS):
        return None
    if m is None:  # the source, the sink, or the pipeline step's `when`
        what = "the source of the items" if ".source." in field else "this field"
        if field.startswith("pipeline.sink"):
            what = "the sink"
        elif field == "when":
            what = "the pipeline step's `when` (decided once, before any item)"
        return [
            Problem(
                where,
                f"{what} cannot read ${{{ref}}}: items and stages exist only inside the "
                "stages (use a stage's `when` to pick items)",
            )
        ]
    index = int(m.group(1))
    if ref.name in ITEM_WORDS:
        return []
    ids = p.stage_ids
    pos = ids.index(ref.name)
    if pos >= index:
        which = "itself" if pos == index else f"stage {ref.name!r}, which comes after it"
        return [
            Problem(
                where,
                f"stage {ids[index]!r} reads ${{{ref}}} of {which}; a stage reads only earlier "
                f"stages' outputs ({', '.join(ids[:index]) or 'none before it'})",
            )
        ]
    if ref.attr not in OUTPUT_FIELDS:
        return [
            Problem(
                where,
                f"${{{ref}}} reads no stage field; use ${{{ref.name}.output}} "
                f"(fields: {', '.join(OUTPUT_FIELDS)})",
            )
        ]
    return []
