"""Templates and conditions: `${inputs.x}`, `${step.output.path}`, the sandbox, and `when`."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tutti_mcp.engine.errors import Problem, SpecError, TemplateError
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.templating import (
    Reference,
    evaluate,
    references,
    render,
    render_value,
    unwrap_condition,
)
from tutti_mcp.engine.workflow import compile_workflow
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord

CTX: dict[str, Any] = {
    "inputs": {"topic": "sqlite", "n": 3, "flag": True, "nothing": None},
    "scan": {
        "output": {"items": [1, 2, 3], "meta": {"name": "x", "tags": ["a", "b"]}, "keys": "k"},
        "results": {"items": [1, 2, 3], "meta": {"name": "x", "tags": ["a", "b"]}, "keys": "k"},
        "status": "succeeded",
        "error": None,
    },
    "note": {"output": "plain text", "results": "plain text", "status": "succeeded", "error": None},
}


def builtin_engine() -> tuple[Engine, InMemoryRunStore]:
    store = InMemoryRunStore()
    return Engine(store, {ExecutorKind.BUILTIN: BuiltinExecutor()}), store


async def run_spec(spec: dict[str, Any], inputs: dict[str, Any] | None = None) -> RunRecord:
    engine, _ = builtin_engine()
    with anyio.fail_after(5):
        return await engine.run(spec, inputs)


def outputs(run: RunRecord) -> dict[str, Any]:
    return {sid: rec.output for sid, rec in run.steps.items()}


# -- rendering ---------------------------------------------------------------------------


def test_text_without_a_template_is_returned_unchanged() -> None:
    assert render("plain {{ jinja }} text", {}) == "plain {{ jinja }} text"


def test_step_output_and_its_results_alias_render_the_same_value() -> None:
    assert render("${note.output} / ${note.results}", CTX) == "plain text / plain text"


def test_dotted_paths_read_into_json_outputs() -> None:
    assert render("${scan.output.meta.name} ${scan.output.meta.tags[1]}", CTX) == "x b"


def test_inputs_render_by_name() -> None:
    assert render("topic=${inputs.topic} n=${inputs.n}", CTX) == "topic=sqlite n=3"


def test_json_values_are_written_as_json_in_text() -> None:
    assert render("${scan.output.meta} ${inputs.flag} ${inputs.nothing}", CTX) == (
        '{"name": "x", "tags": ["a", "b"]} true null'
    )


def test_mapping_keys_named_like_dict_methods_read_the_key() -> None:
    assert render("${scan.output.items} ${scan.output.keys}", CTX) == "[1, 2, 3] k"


def test_dict_methods_are_not_reachable_through_attribute_access() -> None:
    with pytest.raises(TemplateError) as info:
        render("${scan.output.meta.values()}", CTX)
    assert (
        str(info.value) == "'${scan.output.meta.values()}': 'dict object' has no attribute 'values'"
    )


def test_a_missing_path_fails_at_render_time_with_the_template_named() -> None:
    with pytest.raises(TemplateError) as info:
        render("${scan.output.missing}", CTX)
    assert str(info.value) == "'${scan.output.missing}': 'dict object' has no attribute 'missing'"


def test_a_syntax_error_at_render_time_is_a_template_error() -> None:
    with pytest.raises(TemplateError) as info:
        render("${inputs.n", CTX)
    assert str(info.value) == (
        "'${inputs.n': template syntax error: unexpected end of template, "
        "expected 'end of print statement'."
    )


def test_loops_and_filters_work_inside_the_sandbox() -> None:
    text = "${% for t in scan.output.meta.tags %}[${t}]${% endfor %} ${scan.output.items|tojson}"
    assert render(text, CTX) == "[a][b] [1, 2, 3]"


def test_render_value_keeps_native_types_for_a_lone_expression() -> None:
    value = {
        "list": "${scan.output.items}",
        "n": " ${inputs.n} ",
        "text": "n=${inputs.n}",
        "nested": ["${scan.output.meta.name}", 7, None],
    }
    assert render_value(value, CTX) == {
        "list": [1, 2, 3],
        "n": 3,
        "text": "n=3",
        "nested": ["x", 7, None],
    }


def test_references_lists_every_outside_name_with_its_first_attribute() -> None:
    text = (
        "${scan.output.meta} ${note['results']} ${inputs.topic} "
        "${% for x in scan.output %}${x}${% endfor %}"
    )
    assert references(text) == [
        Reference("scan", "output"),
        Reference("note", "results"),
        Reference("inputs", "topic"),
        Reference("scan", "output"),
    ]


# -- the sandbox -------------------------------------------------------------------------

ESCAPES = [
    ("${''.__class__}", "__class__"),
    ("${x.__init__.__globals__}", "__globals__"),
    ("${cycler.__init__}", "__init__"),
    ("${scan.output.__class__.__mro__}", "__mro__"),
]


@pytest.mark.parametrize(("template", "attr"), ESCAPES)
def test_sandbox_escapes_are_rejected_when_templates_are_parsed(template: str, attr: str) -> None:
    with pytest.raises(TemplateError) as info:
        references(template)
    assert str(info.value) == f"access to {attr!r} is not allowed in templates"


@pytest.mark.parametrize(("template", "attr"), ESCAPES)
def test_sandbox_escapes_are_spec_errors_before_a_run_starts(template: str, attr: str) -> None:
    with pytest.raises(SpecError) as info:
        compile_workflow(parse_spec({"steps": [{"id": "a", "args": template}]}))
    assert info.value.problems == [
        Problem("steps[0] (a).args", f"access to {attr!r} is not allowed in templates")
    ]


@pytest.mark.parametrize(
    "template",
    [
        "${''.__class__}",
        "${x.__init__.__globals__}",
        "${cycler.__init__}",
        "${scan.output['__class__']}",
        "${scan.output|attr('__class__')}",
        "${note.output.__class__}",
    ],
)
def test_sandbox_escapes_fail_cleanly_at_render_time(template: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, {**CTX, "x": {}})
    assert str(info.value).startswith(repr(template) + ": ")


def test_unsafe_access_is_explained_as_not_allowed() -> None:
    with pytest.raises(TemplateError) as info:
        render("${''.__class__}", CTX)
    assert str(info.value) == (
        "\"${''.__class__}\": access not allowed in templates "
        "(access to attribute '__class__' of 'str' object is unsafe.)"
    )


def test_conditions_go_through_the_same_sandbox() -> None:
    with pytest.raises(TemplateError) as info:
        evaluate("note.output.__class__", CTX)
    assert str(info.value) == (
        "'note.output.__class__': access not allowed in templates "
        "(access to attribute '__class__' of 'str' object is unsafe.)"
    )


# -- conditions --------------------------------------------------------------------------


def test_a_condition_with_or_without_delimiters_is_the_same_expression() -> None:
    assert unwrap_condition(" ${ scan.output.items|length > 2 } ") == "scan.output.items|length > 2"
    assert [
        evaluate("${scan.output.items|length > 2}", CTX),
        evaluate("scan.output.items|length > 5", CTX),
        evaluate("inputs.topic == 'sqlite' and scan.status == 'succeeded'", CTX),
    ] == [True, False, True]


def test_evaluate_returns_native_values() -> None:
    assert evaluate("${scan.output.meta}", CTX) == {"name": "x", "tags": ["a", "b"]}


@pytest.mark.anyio
async def test_builtin_json_op_keeps_native_values_from_templates() -> None:
    run = await run_spec(
        {
            "inputs": {"n": {"type": "integer", "default": 3}},
            "steps": [
                {"id": "src", "op": "json", "value": {"items": [1, 2], "meta": {"name": "x"}}},
                {
                    "id": "shaped",
                    "op": "json",
                    "value": {
                        "items": "${src.output.items}",
                        "name": "${src.results.meta.name}",
                        "n": "${inputs.n}",
                        "label": "n=${inputs.n}",
                    },
                },
                {"id": "text", "args": "${src.output.items} ${shaped.output.name}"},
            ],
        }
    )
    assert (run.status.value, outputs(run)) == (
        "succeeded",
        {
            "src": {"items": [1, 2], "meta": {"name": "x"}},
            "shaped": {"items": [1, 2], "name": "x", "n": 3, "label": "n=3"},
            "text": "[1, 2] x",
        },
    )


@pytest.mark.anyio
async def test_inputs_passed_to_a_run_are_coerced_and_rendered() -> None:
    run = await run_spec(
        {
            "inputs": {"n": {"type": "integer"}, "topic": "default topic"},
            "steps": [{"id": "a", "op": "json", "value": ["${inputs.n}", "${inputs.topic}"]}],
        },
        {"n": "41"},
    )
    assert run.steps["a"].output == [41, "default topic"]


@pytest.mark.anyio
async def test_a_false_condition_skips_the_step_and_its_dependents() -> None:
    run = await run_spec(
        {
            "inputs": {"n": {"type": "integer", "default": 3}},
            "steps": [
                {"id": "big", "when": "${inputs.n > 5}", "args": "big"},
                {"id": "after_big", "args": "after ${big.output}"},
                {"id": "after_after", "depends_on": ["after_big"], "args": "more"},
                {"id": "small", "when": "inputs.n <= 5", "args": "small"},
            ],
        }
    )
    assert (
        run.status.value,
        {sid: (rec.status.value, rec.output, rec.detail) for sid, rec in run.steps.items()},
    ) == (
        "succeeded",
        {
            "big": ("skipped", None, {"reason": "condition is false: ${inputs.n > 5}"}),
            "after_big": ("skipped", None, {"reason": "dependency 'big' was skipped"}),
            "after_after": ("skipped", None, {"reason": "dependency 'after_big' was skipped"}),
            "small": ("succeeded", "small", None),
        },
    )


@pytest.mark.anyio
async def test_trigger_all_done_runs_a_dependent_of_a_skipped_step_anyway() -> None:
    run = await run_spec(
        {
            "steps": [
                {"id": "maybe", "when": "false", "args": "never"},
                {
                    "id": "always",
                    "depends_on": ["maybe"],
                    "trigger": "all_done",
                    "args": "maybe was ${maybe.status}, output ${maybe.output}",
                },
            ]
        }
    )
    assert {sid: rec.status.value for sid, rec in run.steps.items()} == {
        "maybe": "skipped",
        "always": "succeeded",
    }
    assert run.steps["always"].output == "maybe was skipped, output null"


@pytest.mark.anyio
async def test_conditions_can_branch_on_an_earlier_steps_output() -> None:
    run = await run_spec(
        {
            "steps": [
                {"id": "check", "op": "json", "value": {"ok": False}},
                {"id": "on_ok", "when": "check.output.ok", "args": "ship it"},
                {"id": "on_bad", "when": "not check.output.ok", "args": "fix it"},
            ]
        }
    )
    assert {sid: rec.status.value for sid, rec in run.steps.items()} == {
        "check": "succeeded",
        "on_ok": "skipped",
        "on_bad": "succeeded",
    }


@pytest.mark.anyio
async def test_condition_decisions_are_recorded_as_condition_events_in_the_store() -> None:
    engine, store = builtin_engine()
    seen: list[tuple[str, str | None, dict[str, Any]]] = []
    spec = {
        "inputs": {"n": 7},
        "steps": [
            {"id": "yes", "when": "inputs.n > 5", "args": "y"},
            {"id": "no", "when": "${inputs.n > 50}", "args": "n"},
        ],
    }
    with anyio.fail_after(5):
        run = await engine.run(spec, on_event=lambda k, s, d: seen.append((k, s, d)))
    stored = [
        (e.step_id, e.data) for _, _, e in await store.events(run.id) if e.kind == "condition"
    ]
    expected = [
        ("yes", {"when": "inputs.n > 5", "result": True}),
        ("no", {"when": "${inputs.n > 50}", "result": False}),
    ]
    assert stored == expected
    assert [(s, d) for k, s, d in seen if k == "condition"] == expected


@pytest.mark.anyio
async def test_a_condition_that_cannot_be_evaluated_skips_the_step_with_the_reason() -> None:
    run = await run_spec(
        {
            "steps": [
                {"id": "src", "op": "json", "value": {"a": 1}},
                {"id": "guarded", "when": "src.output.missing > 1", "args": "x"},
            ]
        }
    )
    assert run.steps["guarded"].status.value == "skipped"
    assert run.steps["guarded"].detail == {
        "reason": "condition could not be evaluated: "
        "'src.output.missing > 1': 'dict object' has no attribute 'missing'"
    }


@pytest.mark.anyio
async def test_a_render_time_sandbox_violation_fails_the_step_without_retries() -> None:
    run = await run_spec(
        {
            "steps": [
                # the key comes from data, so only rendering can see what it is
                {"id": "src", "op": "json", "value": {"k": "__class__"}},
                {
                    "id": "sneaky",
                    "args": "${src.output[src.output.k]}",
                    "retry": {"attempts": 3, "backoff_s": 0},
                },
            ]
        }
    )
    rec = run.steps["sneaky"]
    assert (run.status.value, rec.status.value, rec.attempts, rec.error) == (
        "failed",
        "failed",
        1,
        "'${src.output[src.output.k]}': access not allowed in templates "
        "(access to attribute '__class__' of 'dict' object is unsafe.)",
    )


@pytest.mark.anyio
async def test_a_condition_reading_a_missing_key_skips_the_step_instead_of_passing_as_false() -> (
    None
):
    run = await run_spec(
        {
            "steps": [
                {"id": "src", "op": "json", "value": {"a": 1}},
                {"id": "guarded", "when": "src.output.needs_fix", "args": "x"},
            ]
        }
    )
    assert (run.status.value, run.steps["guarded"].status.value, run.steps["guarded"].detail) == (
        "succeeded",
        "skipped",
        {
            "reason": "condition could not be evaluated: "
            "'src.output.needs_fix': 'dict object' has no attribute 'needs_fix'"
        },
    )


@pytest.mark.anyio
async def test_a_lone_expression_reading_a_missing_key_fails_the_json_step() -> None:
    run = await run_spec(
        {
            "steps": [
                {"id": "src", "op": "json", "value": {"a": 1}},
                {"id": "shaped", "op": "json", "value": {"v": "${src.output.missing}"}},
            ]
        }
    )
    assert (run.status.value, run.steps["shaped"].status.value, run.steps["shaped"].error) == (
        "failed",
        "failed",
        "'${src.output.missing}': 'dict object' has no attribute 'missing'",
    )


def test_item_access_to_private_names_and_the_attr_filter_are_refused_before_running() -> None:
    for text, message in [
        ("${x.output['__class__']}", "access to '__class__' is not allowed in templates"),
        (
            "${x.output | attr('__class__')}",
            "the `attr` filter is not allowed in templates: it reads attributes the sandbox hides",
        ),
    ]:
        with pytest.raises(TemplateError) as info:
            references(text)
        assert str(info.value) == message


def test_only_data_and_plain_helpers_are_in_scope() -> None:
    assert [str(r) for r in references("${lipsum} ${cycler} ${range(3) | list}")] == [
        "lipsum",
        "cycler",
    ]
