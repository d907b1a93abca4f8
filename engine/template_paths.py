"""Plain references (`${a.output}`, `${inputs.topic}`, `${a.output.items[0]}`) without jinja2.

Most templates in a workflow only read values: text with `${name.key.key[0]}` spans in
it. jinja2 compiles each distinct text to a Python module (a few hundred microseconds,
and every step of a chain has its own text), then renders it. A text made only of data
and such paths is split once here and rendered by looking the paths up, with exactly
what the sandbox would do on the way: a mapping's key by attribute or subscript, a list's
item by a whole-number index. Anything else (a missing key, a method, a string index, an
operator, a filter, whitespace control, a name jinja2 treats specially) is not a plain
reference: the caller renders the text with jinja2 instead, which also writes the error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# An identifier jinja2 reads as a name; a leading `_` is the sandbox's business (refused).
_NAME = r"[A-Za-z][A-Za-z0-9_]*"
# jinja2 reads `[01]` as two numbers (a syntax error), `[00]` as 0: only plain decimals.
_INDEX = r"0|[1-9][0-9]*"
_STEP = rf"(?:\.{_NAME}|\[(?:{_INDEX})\])"
_PATH = re.compile(rf"({_NAME})((?:{_STEP})*)")
_STEPS = re.compile(rf"\.({_NAME})|\[({_INDEX})\]")
# `${` then spaces, a path, spaces, `}`: jinja2 lexes exactly this as one variable.
_SPAN = re.compile(rf"\$\{{[ \t]*({_NAME}{_STEP}*)[ \t]*\}}")
# Names that jinja2 reads as constants or operators, or binds itself (`self` is the
# template, `loop` a loop's state, ...), whatever the context holds.
_NOT_VARIABLES = frozenset(
    {
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "else",
        "self",
        "loop",
        "caller",
        "varargs",
        "kwargs",
        "super",
    }
)

Path = tuple[str, tuple[str | int, ...]]  # root name, then keys (str) and indexes (int)
Part = str | Path  # template data, or a path to look up


class Missing(Exception):
    """The path is not a plain lookup in this context; render with jinja2 instead."""


def unwrap_condition(expr: str) -> str:
    """`${a.output > 3}` and `a.output > 3` are the same condition."""
    s = expr.strip()
    if s.startswith("${") and s.endswith("}") and s.count("${") == 1:
        return s[2:-1].strip()
    return s


def parse_path(expr: str) -> Path | None:
    """`a.output.items[0]` as ("a", ("output", "items", 0)); None if it is not a plain path."""
    m = _PATH.fullmatch(expr)
    if m is None or m.group(1) in _NOT_VARIABLES:
        return None
    keys: list[str | int] = []
    for key, index in _STEPS.findall(m.group(2)):
        keys.append(key if key else int(index))
    return m.group(1), tuple(keys)


def parse_text(text: str) -> tuple[Part, ...] | None:
    """A template's data and paths in order, or None when it is anything else."""
    if "\r" in text:  # jinja2 rewrites line endings in data
        return None
    parts: list[Part] = []
    pos = 0
    while (start := text.find("${", pos)) >= 0:
        m = _SPAN.match(text, start)
        if m is None:
            return None
        path = parse_path(m.group(1))
        if path is None:
            return None
        if start > pos:
            parts.append(text[pos:start])
        parts.append(path)
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def lookup(path: Path, context: Mapping[str, Any]) -> Any:
    """The value at `path`, as the sandbox would find it; raises Missing when a step is not
    a mapping's key or a list's item (jinja2 decides what that means)."""
    root, keys = path
    if root not in context:
        raise Missing
    value = context[root]
    for key in keys:
        if type(key) is str:
            if not isinstance(value, Mapping) or key not in value:
                raise Missing
            value = value[key]
        elif type(value) is list or type(value) is tuple:
            assert isinstance(key, int)
            if key >= len(value):
                raise Missing
            value = value[key]
        else:
            raise Missing
    return value
