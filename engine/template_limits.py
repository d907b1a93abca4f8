"""The work a template may do: size caps and a per-render operation budget.

Every operation a template can repeat or grow is checked here before it runs: ranges,
`**`, `*`, `+`, `-`, `%`, `~`, str methods and filters that grow text, comparisons and
serialisation of values (whose cost is the size of the value with shared parts counted
each time, as `str()`, `==` and `tojson` see them). What is allowed costs operations
from a budget that one render (or one condition) spends; when it is gone the render
fails. The caps bound memory; the budget bounds CPU, so a hostile template fails in
well under a second instead of hanging the process.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from typing import Any

from jinja2.utils import Namespace

from tutti_mcp.engine.errors import TemplateError

# A render's output, or any string a template builds: 4 M characters is about a million
# tokens, more than a model's context window, and at most 16 MB of memory.
MAX_TEXT = 4_000_000
# Any list a template builds: 8 MB of references.
MAX_ITEMS = 1_000_000
# jinja2's own cap on `range` (sandbox.MAX_RANGE): a loop needs no more.
MAX_RANGE = 100_000
# Integers in workflows count and index things. Python refuses to print an int of more
# than 4,300 digits (about 14,300 bits, sys.get_int_max_str_digits), so a bigger one is
# useless in a template; arithmetic on 14,000-bit ints takes microseconds.
MAX_INT_BITS = 14_000
# One operation is a loop iteration, a call, or 16 characters (or items) copied, built or
# compared; a macro call is 10. Ordinary templates use tens to thousands; a million is
# well under a second of work for most templates.
MAX_OPS = 1_000_000
# What the operation count cannot see (the Python work of jinja2 itself between two
# charges) is bounded by CPU time: the rendering thread's, so a loaded machine does not
# make a template fail.
MAX_CPU_SECONDS = 1.0
# Bulk work at C speed (copying, joining, comparing characters) per operation.
BULK = 16

_HINT = "; do heavy work in a step (shell or prompt) and pass its output in"


class TemplateLimitError(TemplateError):
    """A template asked for more than a limit allows; the message names the limit."""


class Budget:
    """The operations one render may still spend. `cancel()` (from any thread) makes the
    next charge fail, so a render in a worker thread stops when its caller gives up."""

    __slots__ = (
        "cancelled",
        "cpu_deadline",
        "cpu_seconds",
        "left",
        "ops",
        "sizes",
        "spent",
        "ticks",
    )

    def __init__(self, ops: int = MAX_OPS, cpu_seconds: float = MAX_CPU_SECONDS) -> None:
        self.ops = self.left = ops
        self.spent = False  # ran out of operations or CPU time
        self.ticks = 0
        self.cancelled = False
        self.cpu_seconds = cpu_seconds
        self.cpu_deadline: float | None = None
        # id -> (value, expanded size) of large containers already measured in this render;
        # the value is kept so its id cannot be reused while the render runs.
        self.sizes: dict[int, tuple[object, int]] = {}

    def charge(self, ops: int) -> None:
        self.left -= ops
        self.ticks += 1
        if self.left < 0:
            self.spent = True
            raise TemplateLimitError(
                f"the template does too much work: more than {self.ops:,} operations "
                f"(loop iterations, calls, characters copied or compared){_HINT}"
            )
        if not self.ticks & 127:
            self._check_clock()

    def _check_clock(self) -> None:
        if self.cancelled:
            raise TemplateLimitError("rendering was stopped: the step timed out or was cancelled")
        # The clock starts at the first check (a tiny render never reads it), in the
        # thread that renders: a budget is spent in one thread.
        now = time.thread_time()
        if self.cpu_deadline is None:
            self.cpu_deadline = now + self.cpu_seconds
        elif now > self.cpu_deadline:
            self.spent = True
            raise TemplateLimitError(
                f"the template does too much work: more than {self.cpu_seconds:g} s "
                f"of CPU time{_HINT}"
            )

    def cancel(self) -> None:
        """Stop the render at its next check (callable from any thread)."""
        self.cancelled = True


_BUDGET: ContextVar[Budget | None] = ContextVar("tutti_template_budget", default=None)


def start(budget: Budget) -> Any:
    """Make `budget` the one the sandbox charges; returns a token for `stop`."""
    return _BUDGET.set(budget)


def stop(token: Any) -> None:
    _BUDGET.reset(token)


def charge(ops: int) -> None:
    # Outside a render (jinja2 folding constants while it compiles) there is no budget:
    # the caps still hold, and the work is bounded by the template's own text.
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(ops)


def too_big(what: str, size: int, cap: int, unit: str) -> TemplateLimitError:
    return TemplateLimitError(
        f"{what} would be {size:,} {unit}; templates are limited to {cap:,} {unit}{_HINT}"
    )


def check_text(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise too_big(what, size, MAX_TEXT, "characters")
    charge(1 + size // BULK)


def check_items(size: int, what: str) -> None:
    if size > MAX_ITEMS:
        raise too_big(what, size, MAX_ITEMS, "items")
    charge(1 + size // BULK)


# -- the size of a value, as str(), ==, json.dumps see it ----------------------------------

_SCALARS = (bool, float, type(None))


def _namespace_attrs(ns: Namespace) -> Mapping[str, Any]:
    attrs = object.__getattribute__(ns, "_Namespace__attrs")
    return attrs if isinstance(attrs, Mapping) else {}


def expanded(value: Any, limit: int = MAX_TEXT) -> int:
    """The size of `value` written out (characters, about), shared parts counted each
    time they occur. Stops (raises) past `limit`; costs one operation per slot visited,
    once per large container per render."""
    budget = _BUDGET.get()
    total = 0
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 2
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 1
        elif isinstance(v, _SCALARS):
            total += 5
        elif isinstance(v, list | tuple | dict | Namespace):
            known = budget.sizes.get(id(v)) if budget is not None else None
            if known is not None:
                total += known[1]
            else:
                total += _container(v, budget, limit)
        else:
            total += 32  # functions, macros, generators, ranges: short reprs
        if total > limit:
            raise too_big("writing out this value", total, limit, "characters")
    return total


def _container(v: Any, budget: Budget | None, limit: int) -> int:
    if isinstance(v, Namespace):
        return 2 + expanded(dict(_namespace_attrs(v)), limit)
    items: Iterable[Any] = v
    if isinstance(v, dict):
        items = [x for kv in v.items() for x in kv]
    if budget is not None:
        budget.charge(1 + len(v))
    size = 2 + 2 * len(v)
    for item in items:
        kind = type(item)  # plain values inline: most containers hold nothing else
        if kind is str:
            size += len(item) + 2
        elif kind is int:
            size += item.bit_length() // 3 + 1
        elif kind is float or kind is bool or item is None:
            size += 5
        else:
            size += expanded(item, limit)
    if budget is not None and len(v) >= 8:
        budget.sizes[id(v)] = (v, size)
    return size


def weigh(value: Any) -> Any:
    """Charge the cost of comparing `value` (`==`, `in`, `<`, tests) and return it; numbers
    cost nothing more than the operation they are part of."""
    if isinstance(value, str):
        if len(value) > 256:
            charge(len(value) // 64)
    elif isinstance(value, list | tuple | dict):
        charge(1 + expanded(value, 1 << 62) // 64)
    return value


def counted(items: Iterable[Any]) -> Iterable[Any]:
    """`items`, its iteration charged: one operation per item (at once when its size is
    known), and the clock checked as it goes."""
    budget = _BUDGET.get()
    if budget is None:
        return items
    if isinstance(items, Sized):
        budget.charge(1 + len(items))
        return _counting(iter(items), budget, 0)
    return _counting(iter(items), budget, 1)


def _counting(it: Iterator[Any], budget: Budget, ops: int) -> Iterator[Any]:
    for item in it:
        budget.charge(ops)
        yield item


# -- operators --------------------------------------------------------------------------


def check_pow(base: Any, exp: Any) -> None:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        bits = math.ceil(exp * math.log2(abs(base)))  # the result's size, within a bit
        if bits > MAX_INT_BITS:
            raise TemplateLimitError(
                f"`{_short(base)} ** {_short(exp)}` would have about {bits:,} bits; "
                f"templates are limited to {MAX_INT_BITS:,}-bit integers"
            )


def check_mul(left: Any, right: Any) -> None:
    seq, n = (left, right) if isinstance(left, str | list | tuple) else (right, left)
    if isinstance(seq, str | list | tuple):
        kind = "a string" if isinstance(seq, str) else "a list"
        if not isinstance(n, int):
            raise TemplateLimitError(
                f"{kind} can only be repeated a whole number of times, not {_short(n)}"
            )
        if isinstance(seq, str):
            check_text(len(seq) * max(n, 0), "repeating a string")
        else:
            check_items(len(seq) * max(n, 0), "repeating a list")
    elif isinstance(left, int) and isinstance(right, int):
        _check_bits(left.bit_length() + right.bit_length(), left, "*", right)


def check_add(left: Any, right: Any) -> None:
    if isinstance(left, str) and isinstance(right, str):
        check_text(len(left) + len(right), "joining two strings")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        check_items(len(left) + len(right), "joining two lists")
    elif isinstance(left, int) and isinstance(right, int):
        _check_bits(max(left.bit_length(), right.bit_length()) + 1, left, "+", right)


def _check_bits(bits: int, left: int, op: str, right: int) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimitError(
            f"`{_short(left)} {op} {_short(right)}` would have about {bits:,} bits; "
            f"templates are limited to {MAX_INT_BITS:,}-bit integers"
        )


_NUMBER = re.compile(r"\d+")


def _widest(spec: str, what: str) -> int:
    """The largest width or precision written in a format string."""
    if "*" in spec:
        raise TemplateLimitError(f"{what}: `*` widths are not allowed in templates")
    widest = 0
    for m in _NUMBER.finditer(spec):
        digits = m.group()
        if len(digits) > 7:
            raise too_big(what, 10 ** (len(digits) - 1), MAX_TEXT, "characters")
        widest = max(widest, int(digits))
    return widest


def check_percent(fmt: str, args: Any) -> None:
    """`fmt % args` (and the `format` filter): each conversion is at most as wide as the
    widest number in `fmt` plus everything in `args`."""
    fields = fmt.count("%")
    widest = _widest(fmt, "formatting with `%`")
    check_text(len(fmt) + fields * (widest + expanded(args)), "the formatted string")


def check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """`fmt.format(...)`: every field at most its width plus all the arguments."""
    fields = fmt.count("{")
    widest = _widest(fmt, "`str.format`")
    size = expanded(args) + expanded(dict(kwargs))
    check_text(len(fmt) + fields * (widest + size), "the formatted string")


def checked_concat(*parts: Any) -> str:
    """The `~` operator: every operand written as text, the sum within the text cap."""
    texts: list[str] = []
    size = 0
    for part in parts:
        if not isinstance(part, str):
            expanded(part)
        text = str(part)
        size += len(text)
        if size > MAX_TEXT:
            raise too_big("joining with `~`", size, MAX_TEXT, "characters")
        texts.append(text)
    charge(1 + size // BULK)
    return "".join(texts)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "<big int>"
    return text if len(text) <= 40 else text[:37] + "..."
