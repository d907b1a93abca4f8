"""Templates and conditions: `${inputs.x}`, `${step.output.path}`, `${step.results}`.

Rendered by jinja2's SandboxedEnvironment with `${ }` delimiters, never `eval`. The
context holds only JSON values: `inputs` and one mapping per finished step with
`output` (alias `results`, the seed's name), `status` and `error`. Attribute access
on a mapping means its key, so `${a.output.items}` reads the key "items", not the
dict method.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import TemplateError

STEP_FIELDS = ("output", "results", "status", "error")


def _finalize(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False)
    return value


class _Env(SandboxedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


ENV = _Env(
    variable_start_string="${",
    variable_end_string="}",
    block_start_string="${%",
    block_end_string="%}",
    comment_start_string="${#",
    comment_end_string="#}",
    undefined=StrictUndefined,
    finalize=_finalize,
    autoescape=False,
    keep_trailing_newline=True,
)
ENV.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
# only data and plain helpers in scope: no lipsum/cycler/joiner objects to poke at
ENV.globals = {"range": range, "namespace": ENV.globals["namespace"]}


@dataclass(frozen=True)
class Reference:
    """A name a template reads: `inputs.topic` is Reference("inputs", "topic")."""

    name: str
    attr: str | None

    def __str__(self) -> str:
        return f"{self.name}.{self.attr}" if self.attr else self.name


def unwrap_condition(expr: str) -> str:
    """`${a.output > 3}` and `a.output > 3` are the same condition."""
    s = expr.strip()
    if s.startswith("${") and s.endswith("}") and s.count("${") == 1:
        return s[2:-1].strip()
    return s


def references(text: str, *, expression: bool = False) -> list[Reference]:
    """Every outside name a template (or a condition expression) reads. Raises on bad syntax."""
    source = "${" + text + "}" if expression else text
    try:
        ast = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            raise TemplateError("the `attr` filter is not allowed in templates")
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


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Any:
    return ENV.from_string(text)


@lru_cache(maxsize=1024)
def _compiled_expr(expr: str) -> Any:
    return ENV.compile_expression(expr, undefined_to_none=False)


def _explain(exc: Exception, text: str) -> TemplateError:
    if isinstance(exc, SecurityError):
        return TemplateError(f"{text!r}: access not allowed in templates ({exc})")
    if isinstance(exc, UndefinedError):
        return TemplateError(f"{text!r}: {exc.message}")
    return TemplateError(f"{text!r}: {type(exc).__name__}: {exc}")


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render a template to text; JSON values are written as JSON."""
    if "${" not in text:
        return text
    try:
        return str(_compiled(text).render(context))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{text!r}: template syntax error: {exc.message}") from None
    except Exception as exc:  # the sandbox raises many kinds; all mean "this template failed"
        raise _explain(exc, text) from None


def evaluate(expr: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a condition or a single `${expr}` to its native value."""
    source = unwrap_condition(expr)
    try:
        value = _compiled_expr(source)(**context)
        if isinstance(value, Undefined):  # a missing or forbidden value must not pass as falsy
            value._fail_with_undefined_error()
        return value
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{expr!r}: expression syntax error: {exc.message}") from None
    except Exception as exc:
        raise _explain(exc, expr) from None


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render a JSON value whose strings are templates. A string that is exactly one
    `${expr}` keeps the expression's native type (a list stays a list)."""
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("${") and s.endswith("}") and s.count("${") == 1 and "${%" not in s:
            return evaluate(s, context)
        return render(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value
