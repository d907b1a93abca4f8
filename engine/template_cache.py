"""Templates prepared once and kept in a bounded LRU, keyed by their source text.

Compiling a template (parse, the sandbox's rewrite, jinja2's code generation, `compile`)
costs about a millisecond; a step renders the same few texts on every run, and every
instance of a `foreach` renders the same text. Entries are bounded in number and in the
source characters they keep alive, since a cached template holds its text (and the
constants compiled from it): a long prompt does not pin megabytes forever.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from jinja2 import TemplateSyntaxError, nodes
from jinja2.environment import Template
from jinja2.parser import Parser
from jinja2.runtime import Context, new_context
from jinja2.utils import consume

from tutti_mcp.engine.template_paths import Part, parse_path, parse_text, unwrap_condition
from tutti_mcp.engine.template_sandbox import ENV, guard_tree

V = TypeVar("V")


@dataclass(frozen=True)
class CacheStatistics:
    """What a cache has done since it was made (or last cleared)."""

    hits: int
    misses: int
    entries: int
    chars: int  # source characters the entries keep alive
    max_entries: int
    max_chars: int


class TemplateCache(Generic[V]):
    """Source text -> compiled value, least recently used dropped first.

    Safe to use from several threads (templates render in worker threads too): the
    lookups hold a lock, compiling does not (two threads may compile the same text once
    each; both results are equal). A text longer than `max_chars // 8` is compiled every
    time and never kept, so no single text can take most of the cache. Errors raised by
    `build` are not cached."""

    def __init__(self, build: Callable[[str], V], max_entries: int, max_chars: int) -> None:
        self._build = build
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._largest = max_chars // 8
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._chars = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, text: str) -> V:
        """The compiled value of `text`, compiled now if it is not cached."""
        with self._lock:
            value = self._entries.get(text)
            if value is not None:
                self._entries.move_to_end(text)
                self._hits += 1
                return value
            self._misses += 1
        value = self._build(text)
        if len(text) <= self._largest:
            with self._lock:
                if text not in self._entries:
                    self._chars += len(text)
                self._entries[text] = value
                while len(self._entries) > self.max_entries or self._chars > self.max_chars:
                    old, _ = self._entries.popitem(last=False)
                    self._chars -= len(old)
        return value

    def statistics(self) -> CacheStatistics:
        with self._lock:
            return CacheStatistics(
                self._hits,
                self._misses,
                len(self._entries),
                self._chars,
                self.max_entries,
                self.max_chars,
            )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = self._hits = self._misses = 0


# -- what is cached ------------------------------------------------------------------------

RESULT = "result"  # the variable an expression's value is stored in


@dataclass(frozen=True)
class Compiled:
    """A template compiled by jinja2, and the names it can read from a context (every name
    in its text: a render is given those alone, not the whole run's context)."""

    template: Template
    names: tuple[str, ...]
    globals: dict[str, Any]  # the template's, as jinja2 would merge them at each render

    def context(self, context: Mapping[str, Any]) -> Context:
        """A jinja2 context of the globals and the names the template reads from `context`."""
        # What Template.new_context makes, built here once: the run's context holds every
        # finished step and jinja2 copies what it is given (twice per render, and its
        # globals from a ChainMap), so a render cost the length of the run.
        parent = dict(self.globals)
        for name in self.names:
            if name in context:
                parent[name] = context[name]
        return new_context(ENV, self.template.name, self.template.blocks, parent, shared=True)

    def render(self, context: Mapping[str, Any]) -> str:
        return ENV.concat(self.template.root_render_func(self.context(context)))

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """An expression's value (see compile_expression)."""
        ctx = self.context(context)
        consume(self.template.root_render_func(ctx))
        return ctx.vars[RESULT]


def _compiled(tree: nodes.Template, names: tuple[str, ...]) -> Compiled:
    template = ENV.from_string(guard_tree(tree))
    return Compiled(template, names, dict(template.globals))


def _names(tree: nodes.Node) -> tuple[str, ...]:
    names = {n.name for n in tree.find_all(nodes.Name)}  # the node's descendants
    if isinstance(tree, nodes.Name):
        names.add(tree.name)
    return tuple(sorted(names))


def compile_template(text: str) -> Compiled:
    tree = ENV.parse(text)
    return _compiled(tree, _names(tree))


def compile_expression(expr: str) -> Compiled:
    """A condition or `${expr}`, compiled to store its value (what
    Environment.compile_expression does, with the tree guarded before compiling)."""
    parser = Parser(ENV, unwrap_condition(expr), state="variable")
    value = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    names = _names(value)  # not the `result` it is stored in
    body = [nodes.Assign(nodes.Name(RESULT, "store"), value, lineno=1)]
    return _compiled(nodes.Template(body, lineno=1), names)


class Prepared:
    """A text split into data and plain paths when it is only that (`parts`), and its
    jinja2 compilation, made the first time a render needs it."""

    __slots__ = ("_compiled", "expression", "parts", "text")

    def __init__(self, text: str, *, expression: bool) -> None:
        self.text = text
        self.expression = expression
        self.parts: tuple[Part, ...] | None
        if expression:
            path = parse_path(unwrap_condition(text))
            self.parts = None if path is None else (path,)
        else:
            self.parts = parse_text(text)
        self._compiled: Compiled | None = None

    def compiled(self) -> Compiled:
        """jinja2's compilation of the text; raises TemplateSyntaxError."""
        # Two threads may both compile it once: the results are equal.
        if self._compiled is None:
            build = compile_expression if self.expression else compile_template
            self._compiled = build(self.text)
        return self._compiled


# A workflow has tens to hundreds of distinct texts, and a server keeps those of the specs
# it runs. The character bounds limit what cached templates keep alive (their compiled
# code and constants take a few times their text).
TEMPLATES: TemplateCache[Prepared] = TemplateCache(
    lambda text: Prepared(text, expression=False), 4096, 4_000_000
)
EXPRESSIONS: TemplateCache[Prepared] = TemplateCache(
    lambda text: Prepared(text, expression=True), 4096, 1_000_000
)
