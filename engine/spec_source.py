"""Reading spec text safely: JSON/YAML text to data, and the limits on specs.

Every failure is a SpecError naming the source and the problem (with line and column where
the parser knows them), never a traceback. Error messages never quote the spec's text: a
spec file may hold secrets (an API key beside a typo), and over MCP the error goes to a
model. What is checked, and why:

- size (TUTTI_MAX_SPEC_BYTES) before anything is parsed; for files, before anything is read;
- nesting depth (TUTTI_MAX_SPEC_DEPTH) before the recursive parts of json/yaml/pydantic run,
  so no RecursionError;
- files (`engine.spec_files`): regular files only, UTF-8 or with a BOM, no NUL bytes;
- parsed data: JSON values only (YAML timestamps stay strings; !!binary, !!set and friends
  are refused), finite numbers, integers that can be printed again (Python's digit limit),
  and at most as many values once YAML aliases are expanded as a plain spec of the byte
  limit could hold ("billion laughs").
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import MappingStartEvent, SequenceStartEvent
from yaml.nodes import Node, ScalarNode

from tutti_mcp.engine.errors import Problem, SpecError

DEFAULT_MAX_SPEC_BYTES = 1 << 20
DEFAULT_MAX_SPEC_DEPTH = 64
BYTES_SETTING = "TUTTI_MAX_SPEC_BYTES"
DEPTH_SETTING = "TUTTI_MAX_SPEC_DEPTH"


@dataclass(frozen=True)
class SpecLimits:
    """How large and how deeply nested a spec may be (settings TUTTI_MAX_SPEC_*)."""

    max_bytes: int = DEFAULT_MAX_SPEC_BYTES
    max_depth: int = DEFAULT_MAX_SPEC_DEPTH


DEFAULT_LIMITS = SpecLimits()


def fail(source: str, message: str) -> SpecError:
    return SpecError([Problem(source, message)])


def too_large(size: int, limits: SpecLimits) -> str:
    return (
        f"the spec is {size:,} bytes; at most {limits.max_bytes:,} are allowed "
        f"({BYTES_SETTING}): split the workflow, or raise {BYTES_SETTING}"
    )


def _too_deep(where: str, limits: SpecLimits) -> str:
    return (
        f"{where}nested more than {limits.max_depth} levels deep ({DEPTH_SETTING}): "
        f"flatten the spec, or raise {DEPTH_SETTING}"
    )


def _too_many(limits: SpecLimits) -> str:
    return (
        f"the spec holds more than {limits.max_bytes:,} values once YAML aliases are "
        f"expanded ({BYTES_SETTING}): use fewer aliases, or raise {BYTES_SETTING}"
    )


def line_col(data: bytes | str, offset: int) -> str:
    nl = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(nl, 0, offset) + 1  # type: ignore[arg-type]
    column = offset - (data.rfind(nl, 0, offset) + 1) + 1  # type: ignore[arg-type]
    return f"line {line}, column {column}"


# -- text ------------------------------------------------------------------------------------
def parse_spec_text(text: str, source: str, limits: SpecLimits) -> Any:
    """JSON or YAML text (YAML is a superset of JSON, but JSON errors read better) as data,
    checked by `check_data`."""
    # a character is 1 to 4 bytes: encode only when the length alone does not decide
    size = len(text) if len(text) > limits.max_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise fail(source, too_large(size, limits))
    if not text.strip():
        raise fail(source, "is empty: a spec is a mapping with at least `steps`")
    stripped = text.lstrip()
    data = (
        _parse_json(text, source, limits)
        if stripped.startswith("{")
        else _parse_yaml(text, source, limits)
    )
    check_data(data, source, limits)
    return data


# -- JSON
_JSON_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def _json_too_deep(text: str, max_depth: int) -> int | None:
    """The offset where JSON text nests deeper than `max_depth`, or None. Linear: only
    brackets, quotes and escapes are visited; brackets inside strings do not count."""
    depth = 0
    in_string = False
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token == '"':
            in_string = not in_string
        elif in_string or token[0] == "\\":
            continue
        elif token in "[{":
            depth += 1
            if depth > max_depth:
                return m.start()
        else:
            depth -= 1
    return None


class _BadNumber(ValueError):
    pass


def _json_int(digits: str) -> int:
    n = len(digits.lstrip("-"))
    limit = sys.get_int_max_str_digits()
    if limit and n > limit:
        raise _BadNumber(f"an integer of {n:,} digits (at most {limit:,}): write it as a string")
    return int(digits)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber("a number too large for a float: write it as a string")
    return value


def _json_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a JSON number: write it as a string or null")


def _parse_json(text: str, source: str, limits: SpecLimits) -> Any:
    deep_at = _json_too_deep(text, limits.max_depth)
    if deep_at is not None:
        raise fail(source, _too_deep(f"{line_col(text, deep_at)}: ", limits))
    try:
        return json.loads(
            text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise fail(source, f"not valid JSON: {where}: {exc.msg}") from None
    except _BadNumber as exc:
        raise fail(source, f"not valid JSON: {exc}") from None


# -- YAML
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# Tags whose values are not JSON (bytes, sets, dates, ordered pairs): a spec holds JSON.
_NON_JSON_TAGS = ("binary", "set", "omap", "pairs", "timestamp")


class _TooDeep(yaml.composer.ComposerError):
    pass


class _TooMany(yaml.composer.ComposerError):
    pass


class _SpecLoader(yaml.SafeLoader):
    """yaml's safe loader, held to the spec's limits, with JSON values only."""

    def __init__(self, stream: str, limits: SpecLimits) -> None:
        super().__init__(stream)
        self._limits = limits
        self._depth = 0
        # values a collection node stands for once aliases are expanded, by id(node); the
        # nodes live as long as the loader. An alias bomb is refused here, before it exists.
        self._weights: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # The composer recurses once per level: refuse before Python's recursion limit.
        opens = self.check_event(SequenceStartEvent, MappingStartEvent)
        if opens:
            self._depth += 1
            if self._depth > self._limits.max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooDeep(None, None, "too deep", mark)
        try:
            node = super().compose_node(parent, index)
            assert node is not None
        finally:
            if opens:
                self._depth -= 1
        if opens:
            self._weigh(node)
        return node

    def _weigh(self, node: Node) -> None:
        children: list[Node] = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        # an alias to a node still being composed (a recursive one) counts 1: check_data
        # refuses the recursion as too deep
        weight = 1 + sum(self._weights.get(id(child), 1) for child in children)
        if weight > self._limits.max_bytes:
            raise _TooMany(None, None, "too many", node.start_mark)
        self._weights[id(node)] = weight

    def construct_yaml_int(self, node: ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python's limit on decimal digits
            limit = sys.get_int_max_str_digits()
            raise ConstructorError(
                None,
                None,
                f"an integer of more than {limit:,} digits: write it as a string (in quotes)",
                node.start_mark,
            ) from None

    def refuse_tag(self, node: Node) -> Any:
        raise ConstructorError(
            None,
            None,
            f"the tag !!{node.tag.rsplit(':', 1)[-1]} makes a value that is not JSON: a spec "
            "holds mappings, lists, strings, numbers, booleans and null",
            node.start_mark,
        )


# Dates stay strings (`date: 2024-05-01` is text to a workflow, not a datetime).
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)
for _tag in _NON_JSON_TAGS:
    _SpecLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _SpecLoader.refuse_tag)

# A quoted token in a parser message longer than this (an alias or tag name: text from the
# spec) is dropped; short ones (a character) and token kinds ('<block end>') are kept.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_QUOTE_KEEP = 8


def _unquoted(message: str) -> str:
    def keep(m: re.Match[str]) -> str:
        token = m.group()
        return token if token[1:2] == "<" or len(token) - 2 <= _QUOTE_KEEP else "'…'"

    return _QUOTED.sub(keep, message)


def _yaml_message(exc: yaml.YAMLError, limits: SpecLimits) -> str:
    """Where and what, from the error's fields; not str(exc), which quotes the line."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"not valid YAML: {exc.__class__.__name__}"
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    if isinstance(exc, _TooDeep):
        return _too_deep(where, limits)
    if isinstance(exc, _TooMany):
        return f"{where}{_too_many(limits)}"
    problem = _unquoted(exc.problem or "")
    context = _unquoted(exc.context or "")
    detail = f"{problem} ({context})" if problem and context else problem or context
    return f"not valid YAML: {where}{detail}"


def _parse_yaml(text: str, source: str, limits: SpecLimits) -> Any:
    loader = _SpecLoader(text, limits)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise fail(source, _yaml_message(exc, limits)) from None
    finally:
        loader.dispose()


# -- data ------------------------------------------------------------------------------------
def _max_int_bits() -> int:
    """Bits of the longest integer Python will print (its decimal digit limit; log2(10) ~
    3.32 bits a digit); 0: no limit."""
    return int(sys.get_int_max_str_digits() * 3.32)


Link = tuple["Link", str | int] | None  # a value's place: (its parent's place, its key)


def _where(link: Link) -> str:
    """`steps[0].value`; a long path keeps its start and end."""
    parts: list[str | int] = []
    while link is not None:
        link, key = link
        parts.append(key)
    parts.reverse()
    if len(parts) > 12:
        parts = [*parts[:6], f"...({len(parts) - 10} more)...", *parts[-4:]]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the spec"


def check_data(data: Any, source: str, limits: SpecLimits) -> None:
    """Refuse data that is not a JSON value within the limits: deeper than max_depth, more
    values than max_bytes (YAML aliases count every time they are used: an alias bomb
    expands to billions), non-finite floats, integers too long to print, other types.
    Iterative, and stops at the first problem."""
    budget = limits.max_bytes
    max_bits = _max_int_bits()
    stack: list[tuple[Any, int, Link]] = [(data, 0, None)]
    while stack:
        value, depth, link = stack.pop()
        budget -= 1
        if budget < 0:
            raise fail(source, _too_many(limits))
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int:
            if max_bits and value.bit_length() > max_bits:
                raise fail(
                    source,
                    f"{_where(link)}: an integer of more than {sys.get_int_max_str_digits():,} "
                    "digits; write it as a string",
                )
        elif kind is float:
            if not math.isfinite(value):
                raise fail(
                    source, f"{_where(link)}: {value} is not a JSON number; write it as a string"
                )
        elif isinstance(value, list | tuple | dict):  # tuples: specs built in Python
            if depth >= limits.max_depth:
                raise fail(source, _too_deep(f"{_where(link)}: ", limits))
            if not isinstance(value, dict):
                stack.extend((v, depth + 1, (link, i)) for i, v in enumerate(value))
                continue
            for k, v in value.items():
                if type(k) is not str:
                    raise fail(
                        source,
                        f"{_where(link)}: a key of type {type(k).__name__}; keys are strings "
                        "(in YAML, quote it)",
                    )
                stack.append((v, depth + 1, (link, k)))
        else:
            raise fail(
                source, f"{_where(link)}: a value of type {kind.__name__}, which is not JSON"
            )
