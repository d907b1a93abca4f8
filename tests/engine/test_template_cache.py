"""Templates prepared once per text (issue 12): plain references render without jinja2,
other templates are compiled once and kept in a bounded cache, and a render reads only the
names its template mentions, whatever the size of the run's context."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutti_mcp.engine import template_cache
from tutti_mcp.engine.errors import TemplateError
from tutti_mcp.engine.template_cache import EXPRESSIONS, TEMPLATES, Compiled, TemplateCache
from tutti_mcp.engine.templating import (
    _jinja_references,
    evaluate,
    references,
    render,
    render_value,
)

_fresh = itertools.count()


def unique(text: str) -> str:
    """`text` with a suffix no other test renders, so cache counts start from nothing."""
    return f"{text} #{next(_fresh)}-{id(_fresh)}"


def step(output: Any) -> dict[str, Any]:
    return {"output": output, "results": output, "status": "succeeded", "error": None}


CTX: dict[str, Any] = {
    "inputs": {"topic": "sqlite", "n": 3, "flag": True, "nothing": None, "ratio": 0.5},
    "scan": step({"items": [1, 2, 3], "meta": {"name": "x", "tags": ["a", "b"]}, "keys": "k"}),
    "note": step("plain text"),
    "pairs": step([[1, 2], {"k": "v"}]),
    "self": step("a step named self"),
}


class Counting(Mapping[str, Any]):
    """A context that counts how often it is iterated and which keys are read."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.iterations = 0
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        self.iterations += 1
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts jinja2 compiles while the test runs."""
    seen: list[str] = []
    real_t, real_e = template_cache.compile_template, template_cache.compile_expression

    def counted_t(text: str) -> Compiled:
        seen.append(text)
        return real_t(text)

    def counted_e(text: str) -> Compiled:
        seen.append(text)
        return real_e(text)

    monkeypatch.setattr(template_cache, "compile_template", counted_t)
    monkeypatch.setattr(template_cache, "compile_expression", counted_e)
    return seen


@pytest.fixture
def jinja_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every template rendered by jinja2, as before plain references had their own path."""
    monkeypatch.setattr(template_cache, "parse_text", lambda text: None)
    monkeypatch.setattr(template_cache, "parse_path", lambda expr: None)
    TEMPLATES.clear()
    EXPRESSIONS.clear()
    yield
    TEMPLATES.clear()
    EXPRESSIONS.clear()


# -- the cache ----------------------------------------------------------------------------


def test_a_template_rendered_again_is_compiled_once(compiles: list[str]) -> None:
    text = unique("${scan.output.items | length} items")
    before = TEMPLATES.statistics()
    assert (
        render(text, CTX) == render(text, CTX) == text.replace("${scan.output.items | length}", "3")
    )
    after = TEMPLATES.statistics()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert compiles == [text]


def test_a_condition_evaluated_again_is_compiled_once(compiles: list[str]) -> None:
    cond = "${scan.output.items | length > inputs.n - " + str(next(_fresh)) + "}"
    before = EXPRESSIONS.statistics()
    assert evaluate(cond, CTX) == evaluate(cond, CTX)
    after = EXPRESSIONS.statistics()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert compiles == [cond]


def test_a_changed_text_renders_anew_and_a_cached_one_reads_the_new_context() -> None:
    text = unique("${note.output | upper}")
    assert render(text, CTX).startswith("PLAIN TEXT")
    assert render(text.replace("upper", "title"), CTX).startswith("Plain Text")
    assert render(text, {**CTX, "note": step("other")}).startswith("OTHER")


def test_plain_references_are_rendered_without_compiling_anything(compiles: list[str]) -> None:
    # a chain: every step reads the one before it, each with its own text
    ctx = {f"s{i:04d}": step(i) for i in range(200)}
    for i in range(1, 200):
        assert render_value(f"${{s{i - 1:04d}.output}}", ctx) == i - 1
        assert render(f"after ${{s{i - 1:04d}.output}}: ${{s{i - 1:04d}.status}}", ctx) == (
            f"after {i - 1}: succeeded"
        )
    assert evaluate("${s0001.output}", ctx) == 1
    assert compiles == []


def test_a_render_reads_only_the_names_its_template_mentions() -> None:
    # The run's context holds every finished step: a render that copies it costs the
    # length of the run.
    ctx = Counting({"inputs": {"x": 1}, **{f"s{i:04d}": step(i) for i in range(2000)}})
    assert render("${s0007.output | string} and ${inputs.x}", ctx) == "7 and 1"
    assert evaluate("s0007.output > inputs.x", ctx) is True
    assert render("${s0007.output}", ctx) == "7"
    assert (ctx.iterations, ctx.read) == (0, {"s0007", "inputs"})


def recording(built: list[str]) -> Any:
    def build(text: str) -> str:
        built.append(text)
        return text.upper()

    return build


def test_the_cache_drops_the_least_recently_used_text_beyond_its_entries() -> None:
    built: list[str] = []
    cache: TemplateCache[str] = TemplateCache(recording(built), 2, 1000)
    for text in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(text) == text.upper()
    assert built == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.entries, stats.chars) == (2, 4, 2, 2)


def test_the_cache_keeps_at_most_its_characters_and_never_one_long_text() -> None:
    built: list[str] = []
    cache: TemplateCache[str] = TemplateCache(recording(built), 100, 800)
    long = "x" * 101  # more than an eighth of the cache: built each time, never kept
    cache.get(long)
    cache.get(long)
    texts = [str(i) * 100 for i in range(10)]
    for text in texts:
        cache.get(text)
    stats = cache.statistics()
    assert (stats.entries, stats.chars) == (8, 800)
    cache.get(texts[0])  # dropped when the ninth came
    assert built == [long, long, *texts, texts[0]]


def test_a_template_that_does_not_compile_fails_each_time() -> None:
    text = unique("${scan.output | }")
    for _ in range(2):
        with pytest.raises(TemplateError, match="template syntax error"):
            render(text, CTX)


# -- plain references mean what jinja2 means -------------------------------------------

TEXTS = [
    "${inputs.topic}",
    "${inputs}",
    "topic=${inputs.topic} n=${inputs.n} ratio=${inputs.ratio}",
    "${scan.output} ${inputs.flag} ${inputs.nothing}",
    "${scan.output.meta.name}/${scan.output.meta.tags[1]}/${scan.output.items[0]}",
    "${scan.output.items} ${scan.output.keys}",  # keys named like dict methods
    "${ note.output }\t${\tnote.status\t}",
    "$${note.output}} {note.output} $ { }",
    "line one\n${note.output}\nline three\n",
    "windows\r\n${note.output}\r\n",
    "${pairs.output[0][1]} ${pairs.output[1].k} ${pairs.output[1]}",
    "${pairs.output[00]}",
    "${pairs.output[01]}",
    "${pairs.output[1 ]}",
    "${self.output}",
    "${true} ${none}",
    "${note.output[0]} ${note.output.upper}",  # not plain: a string's item, a method
    "${scan.output.items.count}",
    "${scan.output.items[3]}",  # past the end
    "${scan.output.missing}",
    "${absent.output}",
    "${inputs._private}",
    "${-note.output}",
    "${note.output -}x",
    "${range}",
    "${scan.results.meta}",
]


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        value = fn(*args)
    except TemplateError as exc:
        return "error", str(exc)
    # `${self}` is jinja2's template object, a new one each time: compared by its type
    return "ok", value if isinstance(value, str | list | dict | int | float | None) else type(value)


@pytest.fixture
def by_jinja(jinja_only: None) -> dict[str, tuple[str, Any]]:
    out = {f"render {t}": outcome(render, t, CTX) for t in TEXTS}
    out |= {f"value {t}": outcome(render_value, t, CTX) for t in TEXTS}
    out |= {f"refs {t}": outcome(references, t) for t in TEXTS}
    return out


@pytest.mark.parametrize("text", TEXTS)
def test_a_plain_reference_renders_exactly_as_jinja2_renders_it(
    text: str, by_jinja: dict[str, tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the plain path back
    TEMPLATES.clear()
    EXPRESSIONS.clear()
    assert outcome(render, text, CTX) == by_jinja[f"render {text}"]
    assert outcome(render_value, text, CTX) == by_jinja[f"value {text}"]
    assert outcome(references, text) == by_jinja[f"refs {text}"]


_ROOTS = ["inputs", "scan", "note", "pairs", "self", "absent", "true", "none", "_x", "range"]
_STEPS = [".output", ".results", ".meta", ".items", ".tags", ".k", ".upper", ".name", "[0]"]
_STEPS += ["[1]", "[2]", "[01]", "[00]", "[-1]", ".0", "._x", " .output", "|length"]
_SPANS = st.builds(
    lambda ws1, root, steps, ws2: "${" + ws1 + root + "".join(steps) + ws2 + "}",
    st.sampled_from(["", " ", "\t", "-", "\n"]),
    st.sampled_from(_ROOTS),
    st.lists(st.sampled_from(_STEPS), max_size=4),
    st.sampled_from(["", " ", "-", "\t"]),
)
_DATA = st.text(alphabet="ab ${}#%\n\r.", max_size=6)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.one_of(_SPANS, _DATA), min_size=1, max_size=5))
def test_any_text_of_paths_and_data_renders_as_jinja2_renders_it(chunks: list[str]) -> None:
    text = "".join(chunks)
    TEMPLATES.clear()
    EXPRESSIONS.clear()
    plain = [outcome(f, text, CTX) for f in (render, render_value)] + [outcome(references, text)]
    TEMPLATES.clear()
    EXPRESSIONS.clear()
    with (
        mock.patch.object(template_cache, "parse_text", lambda text: None),
        mock.patch.object(template_cache, "parse_path", lambda expr: None),
    ):
        jinja = [outcome(f, text, CTX) for f in (render, render_value)]
    TEMPLATES.clear()
    EXPRESSIONS.clear()
    assert plain == [*jinja, outcome(_jinja_references, text)]


@pytest.mark.parametrize(
    "text",
    [
        "${a.output} and ${b.output[0]} and ${c} and ${inputs.x.y}",
        "${range} ${namespace.x} ${c.output['k']}",
        "no template",
    ],
)
def test_references_of_plain_texts_are_those_jinja2_finds(text: str) -> None:
    assert references(text) == _jinja_references(text)


def test_a_plain_reference_to_a_huge_value_hits_the_size_limit() -> None:
    big = ["x" * 1000] * 5000  # 5 M characters written out, from 5,000 references to one
    ctx = {"a": step(big)}
    with pytest.raises(TemplateError, match="writing out this value would be"):
        render("${a.output}", ctx)
    with pytest.raises(TemplateError, match="writing out this value would be"):
        evaluate("${a.output}", ctx)
    with pytest.raises(TemplateError, match="the rendered text would be"):
        render("${a.output[0]}" * 4001, {"a": step(["x" * 1000])})
