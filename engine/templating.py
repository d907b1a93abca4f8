"""Templates and conditions: `${inputs.x}`, `${step.output.path}`, `${step.results}`.

Rendered by jinja2's SandboxedEnvironment with `${ }` delimiters, never `eval`. The
context holds only JSON values: `inputs` and one mapping per finished step with
`output` (alias `results`, the seed's name), `status` and `error`. Attribute access
on a mapping means its key, so `${a.output.items}` reads the key "items", not the
dict method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from anyio.lowlevel import RunVar
from jinja2 import TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from tutti_mcp.engine import template_limits as lim
from tutti_mcp.engine.errors import TemplateError
from tutti_mcp.engine.template_cache import EXPRESSIONS, TEMPLATES
from tutti_mcp.engine.template_filters import REFUSED
from tutti_mcp.engine.template_paths import (
    Missing,
    Part,
    lookup,
    parse_path,
    parse_text,
)
from tutti_mcp.engine.template_paths import unwrap_condition as unwrap_condition
from tutti_mcp.engine.template_sandbox import ENV, finalize

STEP_FIELDS = ("output", "results", "status", "error")


@dataclass(frozen=True)
class Reference:
    """A name a template reads: `inputs.topic` is Reference("inputs", "topic")."""

    name: str
    attr: str | None

    def __str__(self) -> str:
        return f"{self.name}.{self.attr}" if self.attr else self.name


def references(text: str, *, expression: bool = False) -> list[Reference]:
    """Every outside name a template (or a condition expression) reads. Raises on bad syntax."""
    if expression:
        path = parse_path(text.strip())
        parts: tuple[Part, ...] | None = None if path is None else (path,)
    else:
        parts = parse_text(text)
    if parts is not None:
        return _plain_references(parts)
    return _jinja_references("${" + text + "}" if expression else text)


def _plain_references(parts: tuple[Part, ...]) -> list[Reference]:
    # In the order the jinja2 tree gives them: reads of a key first, then bare names.
    keyed: list[Reference] = []
    bare: list[Reference] = []
    for part in parts:
        if isinstance(part, str):
            continue
        name, keys = part
        if keys:
            keyed.append(Reference(name, keys[0] if isinstance(keys[0], str) else None))
        elif name not in ENV.globals:
            bare.append(Reference(name, None))
    return keyed + bare


def _jinja_references(source: str) -> list[Reference]:
    try:
        ast = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name in REFUSED:
            reason = REFUSED[node.name]
            raise TemplateError(f"the `{node.name}` filter is not allowed in templates: {reason}")
        elif isinstance(node, nodes.Filter | nodes.Test):
            name = node.name
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateError(f"access to {name!r} is not allowed in templates")
    local = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    covered: set[int] = set()
    refs: list[Reference] = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        inner = node.node
        if isinstance(inner, nodes.Name) and inner.ctx == "load" and inner.name not in local:
            attr: str | None = None
            if isinstance(node, nodes.Getattr):
                attr = node.attr
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                attr = node.arg.value
            refs.append(Reference(inner.name, attr))
            covered.add(id(inner))
    for name in ast.find_all(nodes.Name):
        if (
            name.ctx == "load"
            and id(name) not in covered
            and name.name not in local
            and name.name not in ENV.globals
        ):
            refs.append(Reference(name.name, None))
    return refs


def _explain(exc: Exception, text: str) -> TemplateError:
    if isinstance(exc, lim.TemplateLimitError):
        return TemplateError(f"{text!r}: {exc}")
    if isinstance(exc, SecurityError):
        return TemplateError(f"{text!r}: access not allowed in templates ({exc})")
    if isinstance(exc, UndefinedError):
        return TemplateError(f"{text!r}: {exc.message}")
    if isinstance(exc, RecursionError | MemoryError):
        return TemplateError(f"{text!r}: the template nests or grows too deep ({exc})")
    return TemplateError(f"{text!r}: {type(exc).__name__}: {exc}")


def render(text: str, context: Mapping[str, Any], budget: lim.Budget | None = None) -> str:
    """Render a template to text; JSON values are written as JSON. The render spends
    `budget` (a fresh one if not given) and fails when it runs out."""
    if "${" not in text:
        return text
    token = lim.start(budget or lim.Budget())
    try:
        prepared = TEMPLATES.get(text)
        if prepared.parts is not None:
            rendered = _render_plain(prepared.parts, context)
            if rendered is not None:
                return rendered
        return prepared.compiled().render(context)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{text!r}: template syntax error: {exc.message}") from None
    except Exception as exc:  # the sandbox raises many kinds; all mean "this template failed"
        raise _explain(exc, text) from None
    finally:
        lim.stop(token)


def _render_plain(parts: tuple[Part, ...], context: Mapping[str, Any]) -> str | None:
    """What jinja2 would render for data and plain paths (each value through the sandbox's
    `finalize`, the whole through its `concat`), or None if a path is not plain here."""
    try:
        values = [part if isinstance(part, str) else lookup(part, context) for part in parts]
    except Missing:
        return None
    return ENV.concat(
        value if isinstance(part, str) else str(finalize(value))
        for part, value in zip(parts, values, strict=True)
    )


def evaluate(expr: str, context: Mapping[str, Any], budget: lim.Budget | None = None) -> Any:
    """Evaluate a condition or a single `${expr}` to its native value."""
    token = lim.start(budget or lim.Budget())
    try:
        prepared = EXPRESSIONS.get(expr)
        value = _evaluate_plain(prepared.parts, context)
        if value is _NOT_PLAIN:
            value = prepared.compiled().evaluate(context)
        if isinstance(value, Undefined):  # a missing or forbidden value must not pass as falsy
            value._fail_with_undefined_error()
        if not isinstance(value, str | int | float | bool | None):
            lim.check_text(lim.expanded(value), "the value")  # it becomes a step's output
        return value
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{expr!r}: expression syntax error: {exc.message}") from None
    except Exception as exc:
        raise _explain(exc, expr) from None
    finally:
        lim.stop(token)


_NOT_PLAIN = object()


def _evaluate_plain(parts: tuple[Part, ...] | None, context: Mapping[str, Any]) -> Any:
    """The value of a plain path, or _NOT_PLAIN when jinja2 must evaluate it."""
    if parts is None or isinstance(parts[0], str):
        return _NOT_PLAIN
    try:
        return lookup(parts[0], context)
    except Missing:
        return _NOT_PLAIN


def render_value(value: Any, context: Mapping[str, Any], budget: lim.Budget | None = None) -> Any:
    """Render a JSON value whose strings are templates. A string that is exactly one
    `${expr}` keeps the expression's native type (a list stays a list). All the strings
    share one budget."""
    budget = budget or lim.Budget()
    if isinstance(value, str):
        if "${" not in value:
            return value
        s = value.strip()
        if s.startswith("${") and s.endswith("}") and s.count("${") == 1 and "${%" not in s:
            return evaluate(s, context, budget)
        return render(value, context, budget)
    if isinstance(value, dict):
        return {k: render_value(v, context, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, budget) for v in value]
    return value


# -- rendering during a run: off the event loop when it is more than a little work ------

# What a render may spend on the event loop; one that needs more starts again in a worker
# thread (rendering has no side effects), so the loop keeps serving other runs and calls.
INLINE_OPS = 20_000
INLINE_CPU_SECONDS = 0.01


# One long render at a time in a worker thread: renders hold the GIL (two threads would not
# render faster than one), and each more thread that wants it starves the event loop's
# thread further: with three at once, a tool call waited over a second for its turn.
_RENDERING: RunVar[anyio.CapacityLimiter] = RunVar("tutti_rendering")


def _render_slot() -> anyio.CapacityLimiter:
    try:
        return _RENDERING.get()
    except LookupError:
        slot = anyio.CapacityLimiter(1)
        _RENDERING.set(slot)
        return slot


# Set inside a durable workflow of another engine (engine/temporal/): renders stay on the
# event loop, bounded by operations alone, so a replay renders (and refuses) exactly as the
# first execution did; CPU time and threads would differ from one replay to the next.
RENDER_INLINE: ContextVar[bool] = ContextVar("tutti_render_inline", default=False)


async def _offloaded(fn: Any, *args: Any) -> Any:
    if RENDER_INLINE.get():
        return fn(*args, lim.Budget(lim.MAX_OPS, math.inf))
    inline = lim.Budget(INLINE_OPS, INLINE_CPU_SECONDS)
    try:
        return fn(*args, inline)
    except TemplateError:
        if not inline.spent:
            raise
    budget = lim.Budget()
    try:
        # abandoned on cancel (a step's timeout): the budget's cancel then stops the thread
        return await anyio.to_thread.run_sync(
            partial(fn, *args, budget), abandon_on_cancel=True, limiter=_render_slot()
        )
    finally:
        budget.cancel()


async def render_async(text: str, context: Mapping[str, Any]) -> str:
    """`render`, in a worker thread if it takes more than a little work."""
    if "${" not in text:
        return text
    result: str = await _offloaded(render, text, context)
    return result


async def evaluate_async(expr: str, context: Mapping[str, Any]) -> Any:
    """`evaluate`, in a worker thread if it takes more than a little work."""
    return await _offloaded(evaluate, expr, context)


async def render_value_async(value: Any, context: Mapping[str, Any]) -> Any:
    """`render_value`, in a worker thread if it takes more than a little work."""
    return await _offloaded(render_value, value, context)
