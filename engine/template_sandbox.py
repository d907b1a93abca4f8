"""The sandbox templates render in: jinja2's ImmutableSandboxedEnvironment with every
operation that can repeat or grow charged and capped (the limits are in template_limits).

What jinja2's sandbox hooks do not reach (loops, `~`, comparisons, slices) is routed
through hidden filters by rewriting the parsed template before it is compiled: see
`guard_tree`. Templates cannot mutate the lists and dicts they read (the context holds
the run's inputs and outputs), and only a known set of methods of str, list, dict and
numbers may be called, each with its cost.
"""

from __future__ import annotations

import json
import operator
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.runtime import Context, LoopContext, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from tutti_mcp.engine import template_limits as lim
from tutti_mcp.engine.template_filters import guarded_filters, guarded_tests

# Methods of builtin values a template may call, with what each may build. Any other
# method (`to_bytes`, `translate`, `encode`, ...) is refused.
_STR_READERS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "isidentifier",
        "islower",
        "isnumeric",
        "isprintable",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
        "striptags",
        "unescape",
    }
)
_STR_GROWERS = frozenset(("center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join"))
_OTHER_METHODS: dict[type, frozenset[str]] = {
    list: frozenset(["index", "count", "copy"]),
    tuple: frozenset(["index", "count"]),
    dict: frozenset(["keys", "values", "items", "get", "copy"]),
    range: frozenset(["index", "count"]),
    bool: frozenset(["bit_length"]),
    int: frozenset(["bit_length"]),
    float: frozenset(["is_integer"]),
}

# A macro call costs jinja2 about as much as ten loop iterations.
_MACRO_OPS = 10


def _owner(method: Any) -> type | None:
    """The builtin type a bound method belongs to (str for `'x'.upper`), or None."""
    owner = getattr(method, "__self__", None)
    if owner is None or not isinstance(method, types.BuiltinMethodType | types.MethodType):
        return None
    cls = owner if isinstance(owner, type) else type(owner)
    for base in (str, *_OTHER_METHODS):
        if issubclass(cls, base):
            return base
    return None


def _check_str_method(s: str, name: str, args: tuple[Any, ...]) -> None:
    if name in ("center", "ljust", "rjust", "zfill") and args:
        width = args[0] if isinstance(args[0], int) else 0
        lim.check_text(max(len(s), width), f"`str.{name}`")
    elif name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        lim.check_text(len(s) * max(size, 1), "`str.expandtabs`")
    elif name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        times = len(s) + 1 if not old else s.count(old)
        if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
            times = min(times, args[2])
        lim.check_text(len(s) + times * len(new), "`str.replace`")
    else:
        lim.charge(1 + len(s) // lim.BULK)


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox, with limits on what templates may build and do."""

    intercepted_binops = frozenset(["+", "-", "*", "//", "%", "**"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Attribute access on a mapping reads its key: `a.output.items` is the key "items".
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        if type(obj) is Namespace and not attribute.startswith("_"):
            # a namespace holds only data (and the generic checks are slow on it)
            try:
                return getattr(obj, attribute)
            except AttributeError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        # Checked, not charged: an operator runs once per loop iteration or call at most.
        if operator == "**":
            lim.check_pow(left, right)
        elif operator == "*":
            lim.check_mul(left, right)
        elif operator == "+" or (operator == "-" and isinstance(left, int)):
            lim.check_add(left, right)
        elif operator == "%" and isinstance(left, str):
            lim.check_percent(left, right)
        return self.binop_table[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        lim.charge(_MACRO_OPS if isinstance(__obj, Macro) else 1)
        owner = _owner(__obj)
        if owner is not None:
            name = __obj.__name__
            if owner is str and name in _STR_READERS | _STR_GROWERS:
                if name == "join" and args:
                    items = list(lim.counted(args[0]))
                    n, sep = len(items), __obj.__self__
                    lim.check_text(lim.expanded(items) + n * len(sep), "`str.join`")
                    args = (items, *args[1:])
                else:
                    _check_str_method(__obj.__self__, name, args)
            elif owner is not str and name in _OTHER_METHODS[owner]:
                if isinstance(__obj.__self__, Iterable) and name == "copy":
                    lim.counted(__obj.__self__)
            else:
                raise lim.TemplateLimitError(
                    f"the method `{owner.__name__}.{name}` is not available in templates"
                )
        elif isinstance(__obj, LoopContext) and args:
            args = (lim.counted(args[0]), *args[1:])  # a recursive loop's next level
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        mapping = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            if mapping and len(args) == 1 and isinstance(args[0], Mapping):
                lim.check_str_format(fmt, (), args[0])
            else:
                lim.check_str_format(fmt, args, kwargs)
            assert wrapped is not None
            return wrapped(*args, **kwargs)

        return checked

    def concat(self, parts: Iterable[str]) -> str:
        """Join a render's (or a macro's, or a block's) output, within the text cap."""
        # Listing the parts first is safe: each was charged when it was made, and the
        # same big string written many times is only as many references.
        chunks = list(parts)
        size = sum(map(len, chunks))
        if size > lim.MAX_TEXT:
            raise lim.too_big("the rendered text", size, lim.MAX_TEXT, "characters")
        if size > 4096:
            lim.charge(size // lim.BULK)
        return "".join(chunks)


def safe_range(*args: Any) -> range:
    """`range` for templates: whole numbers only and at most MAX_RANGE items."""
    if not all(isinstance(a, int) for a in args):
        raise lim.TemplateLimitError(
            f"range() takes whole numbers, not {', '.join(repr(a) for a in args)}"
        )
    rng = range(*args)
    if len(rng) > lim.MAX_RANGE:
        raise lim.too_big("the range", len(rng), lim.MAX_RANGE, "items")
    return rng


def finalize(value: Any) -> Any:
    """What a template writes for a value: text as it is, JSON values as JSON, within the caps."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list | bool):
        lim.check_text(lim.expanded(value), "writing out this value")
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, int | float):
        lim.expanded(value)
    return value


# -- what the hooks cannot see, routed through hidden filters ------------------------------

_LOOP, _CONCAT, _WEIGH, _SLICE = "_tutti_loop", "_tutti_concat", "_tutti_weigh", "_tutti_slice"


@pass_context
def _loop_filter(context: Context, items: Any) -> Any:
    return items if isinstance(items, Undefined) else lim.counted(items)


@pass_context
def _concat_filter(context: Context, first: Any, *rest: Any) -> str:
    return lim.checked_concat(first, *rest)


@pass_context
def _weigh_filter(context: Context, value: Any) -> Any:
    return value if isinstance(value, Undefined) else lim.weigh(value)


@pass_context
def _slice_filter(context: Context, value: Any, start: Any, stop: Any, step: Any) -> Any:
    cut = slice(start, stop, step)
    if isinstance(value, str | list | tuple):
        lim.charge(1 + len(range(*cut.indices(len(value)))) // lim.BULK)
    return value[cut]


def _hidden(name: str, node: nodes.Expr, args: list[nodes.Expr], lineno: int) -> nodes.Filter:
    return nodes.Filter(node, name, args, [], None, None, lineno=lineno)


def _weighed(node: nodes.Expr) -> nodes.Expr:
    # a constant is as big as the template's text says: nothing to weigh
    if isinstance(node, nodes.Const):
        return node
    return _hidden(_WEIGH, node, [], node.lineno)


class _Guard(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        assert isinstance(node.iter, nodes.Expr)
        node.iter = _hidden(_LOOP, node.iter, [], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _hidden(_CONCAT, node.nodes[0], list(node.nodes[1:]), node.lineno)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _weighed(node.expr)
        for operand in node.ops:
            operand.expr = _weighed(operand.expr)
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        self.generic_visit(node)
        if not isinstance(node.arg, nodes.Slice):
            return node
        cut, obj = node.arg, node.node
        assert isinstance(obj, nodes.Expr)
        bounds: list[nodes.Expr] = [
            part if part is not None else nodes.Const(None)
            for part in (cut.start, cut.stop, cut.step)
        ]
        return _hidden(_SLICE, obj, bounds, node.lineno)


def guard_tree(tree: nodes.Template) -> nodes.Template:
    """Route loops, `~`, comparisons and slices of a parsed template through the limits."""
    _Guard().visit(tree)
    tree.set_environment(ENV)
    return tree


def _make_env() -> SandboxEnvironment:
    env = SandboxEnvironment(
        variable_start_string="${",
        variable_end_string="}",
        block_start_string="${%",
        block_end_string="%}",
        comment_start_string="${#",
        comment_end_string="#}",
        undefined=StrictUndefined,
        finalize=finalize,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.binop_table = {**env.binop_table, "%": operator.mod}
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.filters = guarded_filters(env.filters)
    env.tests = guarded_tests(env.tests)
    env.filters.update(
        {_LOOP: _loop_filter, _CONCAT: _concat_filter, _WEIGH: _weigh_filter, _SLICE: _slice_filter}
    )
    # only data and plain helpers in scope: no lipsum/cycler/joiner objects to poke at
    env.globals = {"range": safe_range, "namespace": env.globals["namespace"]}
    return env


ENV = _make_env()
