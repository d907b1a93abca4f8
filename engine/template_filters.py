"""The filters and tests templates may use, each charged and capped (see template_limits).

jinja2's filters run at C or Python speed on whatever they are given, and several grow
their output from a number in the template (`center(10**9)`, `batch(n, fill)`,
`slice(n)`, `indent(n)`, `format`). Every filter here charges the size of its input to
the render's budget, those that build text or lists check the size they will build
before building it, and those that write or compare whole values measure them first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context, Undefined
from jinja2.utils import _PassArg

from tutti_mcp.engine.template_limits import (
    MAX_ITEMS,
    MAX_TEXT,
    TemplateLimitError,
    charge,
    check_items,
    check_percent,
    check_text,
    counted,
    expanded,
    too_big,
    weigh,
)

Check = Callable[..., None]

# Filters templates may not use, with the reason given to whoever wrote the template.
REFUSED = {
    "attr": "it reads attributes the sandbox hides",
    "wordwrap": "it can take quadratic time on long words",
    "urlize": "its regular expressions are slow on long text",
    "pprint": "its output is Python's, not JSON; use `tojson`",
}


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TemplateLimitError(f"{what} must be a whole number, not {value!r}") from None


def _center(value: Any, width: Any = 80) -> None:
    check_text(max(len(str(value)), _int(width, "the width of `center`")), "`center`")


def _indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    text = str(s)
    pad = len(width) if isinstance(width, str) else _int(width, "the width of `indent`")
    check_text(len(text) + (text.count("\n") + 1) * max(pad, 0), "`indent`")


def _batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    n = _int(linecount, "the size of a `batch`")
    check_items(n, "one `batch`")


def _slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    n = _int(slices, "the number of `slice`s")
    check_items(n, "`slice`")


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent(str(value), kwargs or args)


def _replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old, new = str(s), str(old), str(new)
    times = len(text) + 1 if not old else text.count(old)
    if count is not None:
        times = min(times, max(_int(count, "the count of `replace`"), 0))
    check_text(len(text) + times * len(new), "`replace`")


def _join(value: Any, d: Any = "", attribute: Any = None) -> None:
    n = len(value) if isinstance(value, Sized) else 0
    check_text(expanded(value) + n * len(str(d)), "`join`")


def _sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):
        raise TemplateLimitError("`sum` adds numbers; join lists with `+` or strings with `join`")


def _serialised(value: Any, *args: Any, **kwargs: Any) -> None:
    check_text(expanded(value), "writing out this value")


def _sorted(value: Any, *args: Any, **kwargs: Any) -> None:
    weigh(value)
    if isinstance(value, Sized) and len(value) > 1:
        charge(len(value) * math.ceil(math.log2(len(value))))


def _listed(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, Sized):
        check_items(len(value), "the list")


CHECKS: dict[str, Check] = {
    "center": _center,
    "indent": _indent,
    "batch": _batch,
    "slice": _slice,
    "format": _format,
    "replace": _replace,
    "join": _join,
    "sum": _sum,
    "list": _listed,
    "string": _serialised,
    "tojson": _serialised,
    "urlencode": _serialised,
    "xmlattr": _serialised,
    "sort": _sorted,
    "dictsort": _sorted,
    "unique": _sorted,
    "groupby": _sorted,
    "min": _sorted,
    "max": _sorted,
}

COMPARING_TESTS = frozenset(
    {
        "in",
        "==",
        "eq",
        "equalto",
        "!=",
        "ne",
        ">",
        "gt",
        "greaterthan",
        "ge",
        ">=",
        "<",
        "lt",
        "lessthan",
        "<=",
        "le",
    }
)


def _input(value: Any) -> Any:
    """Charge for what a filter will walk through; iterators are charged as they go."""
    kind = type(value)
    if kind is str:
        charge(1 + len(value) // 16)
    elif kind is list or kind is dict:
        charge(1 + len(value))
    elif isinstance(value, Undefined):
        charge(1)
    elif isinstance(value, str):
        charge(1 + len(value) // 16)
    elif isinstance(value, Sized):
        charge(1 + len(value))
    elif isinstance(value, Iterable):
        return counted(value)
    else:
        charge(1)
    return value


def _output(value: Any, name: str) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise too_big(f"the output of `{name}`", len(value), MAX_TEXT, "characters")
    if isinstance(value, list) and len(value) > MAX_ITEMS:
        raise too_big(f"the output of `{name}`", len(value), MAX_ITEMS, "items")
    return value


def _guard(name: str, func: Callable[..., Any], check: Check | None) -> Callable[..., Any]:
    # pass_context keeps jinja2 from folding a call on constants at compile time, where
    # no budget is running, and gives what the filter itself asks for.
    passes = _PassArg.from_obj(func)

    @pass_context
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        value = _input(value)
        if check is not None and not isinstance(value, Undefined):
            if not isinstance(value, Sized) and isinstance(value, Iterable):
                value = list(value)  # charged item by item: the check needs its size
            check(value, *args, **kwargs)
        if passes is _PassArg.context:
            out = func(context, value, *args, **kwargs)
        elif passes is _PassArg.eval_context:
            out = func(context.eval_ctx, value, *args, **kwargs)
        elif passes is _PassArg.environment:
            out = func(context.environment, value, *args, **kwargs)
        else:
            out = func(value, *args, **kwargs)
        return _output(out, name)

    guarded.__name__ = guarded.__qualname__ = f"{name}_filter"
    return guarded


def guarded_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """jinja2's filters (and ours), less the refused ones, each charged and capped."""
    return {
        name: _guard(name, func, CHECKS.get(name))
        for name, func in filters.items()
        if name not in REFUSED
    }


def _weigh_all(value: Any, *args: Any, **kwargs: Any) -> None:
    weigh(value)
    for arg in args:
        weigh(arg)


def guarded_tests(tests: Mapping[str, Any]) -> dict[str, Any]:
    """jinja2's tests; those that compare values charge the size of what they compare."""
    return {
        name: _guard(name, func, _weigh_all if name in COMPARING_TESTS else None)
        for name, func in tests.items()
    }
