"""Steps that grow at run time: a `foreach` step becomes one instance per item, each a
durable step of its own added to the run when the step's turn comes.

Here: what validation says about the names only instances have (`${item}`,
`${item_index}`, `${step.outputs}`), where the items come from (a list or a template's
value, workspace files by glob, the lines of a workspace file), and how instances are named.
The runner adds the instances (engine.execution.growth); this module does no scheduling.
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tutti_mcp.engine.errors import Problem, StepError, TemplateError
from tutti_mcp.engine.spec import Step
from tutti_mcp.engine.spec_foreach import ForEach
from tutti_mcp.engine.templating import Reference, render_async, render_value_async

LINES_MAX_BYTES = 8 << 20  # a `lines` file is read whole; larger ones are refused
KEY_MAX_CHARS = 200


def item_ref_problems(step: Step, where: str, field: str) -> list[Problem]:
    """`${item}` / `${item_index}` read in `field` of `step`: where they mean something."""
    if step.foreach is None:
        return [
            Problem(
                where,
                "${item} and ${item_index} exist only in a `foreach` step (one instance per "
                "item); add `foreach:` to this step or read another step's output",
            )
        ]
    if field.startswith(("foreach.items", "foreach.lines")):
        return [Problem(where, "the source of the items cannot read ${item}: it makes them")]
    if field == "when":
        return [
            Problem(
                where,
                "a foreach step's `when` decides once, before its items are read, so it cannot "
                "read ${item}; filter the items in `foreach.items` instead "
                "(e.g. ${find.output | select('ne', '')})",
            )
        ]
    return []


def outputs_ref_problems(target: Step, where: str) -> list[Problem]:
    if target.foreach is None:
        return [
            Problem(
                where,
                f"${{{target.id}.outputs}} collects a `foreach` step's instances; "
                f"{target.id!r} has no `foreach`: use ${{{target.id}.output}}",
            )
        ]
    return []


LOOP_FIELDS = ("iteration", "last")


def loop_ref_problems(ref: Reference, where: str) -> list[Problem]:
    if ref.attr in LOOP_FIELDS:
        return []
    return [
        Problem(
            where,
            "a loop's steps read ${loop.iteration} (1, 2, ...) and ${loop.last} (the previous "
            f"iteration's outputs by step, none in the first); not ${{{ref}}}",
        )
    ]


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a `foreach` step: its id, position and item."""

    step_id: str
    index: int
    item: Any

    def scope(self) -> dict[str, Any]:
        """What the instance's templates read beside the run's context."""
        return {"item": self.item, "item_index": self.index}


async def foreach_items(
    fe: ForEach, context: Mapping[str, Any], workspace: Path, limit: int
) -> list[Any]:
    """The items of a `foreach` step, read now (from the run's context or the workspace).
    Raises StepError saying what was wrong with the source."""
    if fe.glob is not None:
        items: list[Any] = workspace_glob(fe.glob, workspace)
    elif fe.lines is not None:
        items = _lines(await _render(fe.lines, context, "foreach.lines"), workspace)
    else:
        items = _as_list(await _value(fe.items, context))
    if len(items) > limit:
        raise StepError(
            f"foreach has {len(items)} items, more than this server's limit of {limit} "
            "(TUTTI_MAX_FOREACH_ITEMS); split the list, or raise the limit",
            retryable=False,
        )
    return items


async def instances(
    group: str, fe: ForEach, items: list[Any], context: dict[str, Any]
) -> list[Instance]:
    """Name each item's instance: `group[KEY]` from `key`, else `group[INDEX]`."""
    if fe.key is None:
        return [Instance(f"{group}[{i}]", i, item) for i, item in enumerate(items)]
    out: list[Instance] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        scoped = ChainMap({"item": item, "item_index": i}, context)
        key = (await _render(fe.key, scoped, "foreach.key")).strip()
        if not key or len(key) > KEY_MAX_CHARS or any(c in key for c in "[]\n\r"):
            raise StepError(
                f"foreach.key of item {i} gave {key[:60]!r}: a key must be 1-{KEY_MAX_CHARS} "
                "characters on one line, without [ or ]",
                retryable=False,
            )
        if key in seen:
            raise StepError(
                f"foreach.key gave {key!r} for items {seen[key]} and {i}: keys must be unique "
                "(they name the instances); choose a key that tells items apart",
                retryable=False,
            )
        seen[key] = i
        out.append(Instance(f"{group}[{key}]", i, item))
    return out


async def _value(items: Any, context: Mapping[str, Any]) -> Any:
    try:
        return await render_value_async(items, context)
    except TemplateError as exc:
        raise StepError(f"foreach.items: {exc}", retryable=False) from None


async def _render(text: str, context: Mapping[str, Any], field: str) -> str:
    try:
        return await render_async(text, context)
    except TemplateError as exc:
        raise StepError(f"{field}: {exc}", retryable=False) from None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):  # a step's text output holding a JSON list
        try:
            value = json.loads(value)
        except ValueError:
            raise StepError(
                f"foreach.items must be a list; got text that is not JSON: {value[:80]!r} "
                "(give the source step `output: json`, or use `lines:` for one item per line)",
                retryable=False,
            ) from None
    if not isinstance(value, list):
        raise StepError(
            f"foreach.items must be a list; got {type(value).__name__}: {str(value)[:80]!r}",
            retryable=False,
        )
    return value


def _confined(workspace: Path, rel: str, what: str) -> Path:
    root = workspace.resolve()
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise StepError(
            f"{what} {rel!r} must be a relative path inside the workspace {root} (no .., "
            "not absolute)",
            retryable=False,
        )
    return root


def workspace_glob(
    pattern: str,
    workspace: Path,
    *,
    what: str = "foreach.glob",
    limit: int | None = None,
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    """The workspace files matching `pattern` (relative, without ..), as sorted relative
    paths; a symlink that leads outside is left out, and so are paths through a directory
    named in `skip`. With `limit`, the scan stops at that many matches. StepError names
    `what` when the pattern is not confined."""
    root = _confined(workspace, pattern, what)
    found: list[str] = []
    for path in root.glob(pattern):
        if skip and not skip.isdisjoint(path.relative_to(root).parts[:-1]):
            continue
        real = path.resolve()
        if real.is_file() and real.is_relative_to(root):  # a symlink may point outside
            found.append(path.relative_to(root).as_posix())
            if limit is not None and len(found) >= limit:
                break
    return sorted(found)


def workspace_path(workspace: Path, rel: str, what: str) -> Path:
    """`rel` (relative, without ..) resolved in the workspace; StepError naming `what` when
    it, or a symlink on the way, leads outside."""
    root = _confined(workspace, rel, what)
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise StepError(f"{what} {rel!r} leads outside the workspace", retryable=False)
    return path


def _lines(rel: str, workspace: Path) -> list[str]:
    path = workspace_path(workspace, rel, "foreach.lines")
    try:
        with path.open("rb") as f:
            data = f.read(LINES_MAX_BYTES + 1)
    except OSError as exc:
        raise StepError(
            f"foreach.lines cannot read {rel!r} in the workspace: {exc.strerror}",
            retryable=False,
        ) from None
    if len(data) > LINES_MAX_BYTES:
        raise StepError(
            f"foreach.lines {rel!r} is over {LINES_MAX_BYTES >> 20} MiB", retryable=False
        )
    text = data.decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]
