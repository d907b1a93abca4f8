"""Whole-spec validation in engine.workflow: each problem is named with an exact message."""

from __future__ import annotations

from typing import Any

import pytest

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.spec import parse_spec
from tutti_mcp.engine.workflow import Workflow, compile_workflow


def compile_(data: dict[str, Any]) -> Workflow:
    return compile_workflow(parse_spec(data))


def problems_of(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        compile_(data)
    return info.value.problems


def test_duplicate_step_ids_are_reported_with_both_positions() -> None:
    data = {"steps": [{"id": "a", "args": "x"}, {"id": "a", "args": "y"}]}
    assert problems_of(data) == [Problem("steps[1].id", "duplicate step id 'a' (also steps[0])")]


def test_an_unknown_dependency_suggests_the_closest_step_id() -> None:
    data = {
        "steps": [
            {"id": "analyze", "args": "x"},
            {"id": "b", "args": "y", "depends_on": ["analyse"]},
        ]
    }
    assert problems_of(data) == [
        Problem("steps[1] (b).depends_on[0]", "unknown step 'analyse'; did you mean 'analyze'?")
    ]


def test_an_unknown_dependency_with_no_close_match_lists_the_known_steps() -> None:
    data = {"steps": [{"id": "a", "args": "x"}, {"id": "b", "depends_on": ["zzzz"]}]}
    assert problems_of(data) == [
        Problem("steps[1] (b).depends_on[0]", "unknown step 'zzzz'; known: a, b")
    ]


def test_a_step_cannot_depend_on_itself() -> None:
    assert problems_of({"steps": [{"id": "a", "depends_on": ["a"]}]}) == [
        Problem("steps[0] (a).depends_on[0]", "a step cannot depend on itself")
    ]


def test_a_cycle_is_reported_with_its_steps_in_order() -> None:
    data = {
        "steps": [
            {"id": "a", "depends_on": ["c"]},
            {"id": "b", "depends_on": ["a"]},
            {"id": "c", "depends_on": ["b"]},
        ]
    }
    with pytest.raises(SpecError) as info:
        compile_(data)
    assert str(info.value) == (
        "workflow spec is invalid (1 problem):\n"
        "  - steps: dependency cycle: a -> b -> c -> a (remove one of these edges)"
    )


def test_a_cycle_made_through_a_template_reference_is_found_too() -> None:
    data = {"steps": [{"id": "a", "args": "${b.output}"}, {"id": "b", "depends_on": ["a"]}]}
    assert problems_of(data) == [
        Problem("steps", "dependency cycle: a -> b -> a (remove one of these edges)")
    ]


def test_a_template_reference_to_an_unknown_step_is_a_validation_error() -> None:
    data = {"steps": [{"id": "fetch", "args": "x"}, {"id": "b", "args": "${fetc.output}"}]}
    assert problems_of(data) == [
        Problem(
            "steps[1] (b).args", "unknown step or name 'fetc' in template; did you mean 'fetch'?"
        )
    ]


def test_a_template_reference_to_an_unknown_input_suggests_the_declared_one() -> None:
    data = {"inputs": {"topic": "x"}, "steps": [{"id": "a", "args": "${inputs.topc}"}]}
    assert problems_of(data) == [
        Problem(
            "steps[0] (a).args",
            "unknown input 'topc'; did you mean 'topic'? "
            "(declare it under `inputs:` to use ${inputs.topc})",
        )
    ]


def test_an_input_reference_without_declared_inputs_says_how_to_declare_it() -> None:
    assert problems_of({"steps": [{"id": "a", "prompt": "${inputs.topic}"}]}) == [
        Problem(
            "steps[0] (a).prompt",
            "unknown input 'topic' (declare it under `inputs:` to use ${inputs.topic})",
        )
    ]


def test_inputs_alone_is_not_a_reference() -> None:
    data = {"inputs": {"x": 1}, "steps": [{"id": "a", "args": "${inputs}"}]}
    assert problems_of(data) == [
        Problem("steps[0] (a).args", "use ${inputs.NAME}, not ${inputs} alone")
    ]


def test_a_step_reference_without_a_field_says_which_fields_exist() -> None:
    data = {"steps": [{"id": "a", "args": "x"}, {"id": "b", "args": "${a}"}]}
    assert problems_of(data) == [
        Problem(
            "steps[1] (b).args",
            "${a} reads no step field; use ${a.output} (fields: output, results, status, error)",
        )
    ]


def test_a_step_reference_to_an_unknown_field_is_rejected() -> None:
    data = {"steps": [{"id": "a", "args": "x"}, {"id": "b", "args": "${a.outptu}"}]}
    assert problems_of(data) == [
        Problem(
            "steps[1] (b).args",
            "${a.outptu} reads no step field; use ${a.output} "
            "(fields: output, results, status, error)",
        )
    ]


def test_a_step_cannot_read_its_own_output() -> None:
    assert problems_of({"steps": [{"id": "a", "args": "${a.output}"}]}) == [
        Problem("steps[0] (a).args", "a step cannot read its own output")
    ]


def test_template_syntax_errors_are_validation_errors() -> None:
    assert problems_of({"steps": [{"id": "a", "args": "${inputs.x"}]}) == [
        Problem(
            "steps[0] (a).args",
            "template syntax error: unexpected end of template, expected 'end of print statement'.",
        )
    ]


def test_references_in_nested_value_strings_are_checked() -> None:
    data = {"steps": [{"id": "a", "value": {"k": ["${nope.output}"]}}]}
    assert problems_of(data) == [
        Problem("steps[0] (a).value.k[0]", "unknown step or name 'nope' in template; known: a")
    ]


def test_references_in_a_when_condition_are_checked() -> None:
    data = {"steps": [{"id": "a", "args": "x"}, {"id": "b", "when": "nope.output > 1"}]}
    assert problems_of(data) == [
        Problem("steps[1] (b).when", "unknown step or name 'nope' in template; known: a, b")
    ]


def test_a_when_condition_may_be_written_with_the_template_delimiters() -> None:
    # engine.templating.unwrap_condition documents `${a.output > 3}` and `a.output > 3`
    # as the same condition; validation must accept both forms.
    data = {
        "inputs": {"n": 1},
        "steps": [{"id": "a", "args": "x"}, {"id": "b", "when": "${a.output == 'x'}"}],
    }
    wf = compile_(data)
    assert wf.deps["b"] == ("a",)


def test_a_swarm_without_agents_is_rejected_with_what_to_give() -> None:
    assert problems_of({"type": "swarm", "steps": [{"id": "a"}]}) == [
        Problem(
            "type",
            "a swarm needs agents: give `agents` (and `topology`) at the top of the spec instead "
            "of `steps`, or make one of the steps a swarm (`swarm: {agents: ...}`)",
        )
    ]


def test_an_unknown_fallback_step_is_rejected() -> None:
    data = {
        "steps": [
            {"id": "a", "args": "x", "on_failure": "fallback", "fallback": "backup"},
            {"id": "backup_", "args": "y"},
        ]
    }
    assert problems_of(data) == [
        Problem("steps[0] (a).fallback", "unknown step 'backup'; did you mean 'backup_'?")
    ]


def test_a_step_cannot_be_its_own_fallback() -> None:
    data = {"steps": [{"id": "a", "on_failure": "fallback", "fallback": "a"}]}
    assert problems_of(data) == [
        Problem("steps[0] (a).fallback", "a step cannot be its own fallback")
    ]


def test_one_step_cannot_be_the_fallback_of_two() -> None:
    data = {
        "steps": [
            {"id": "a", "on_failure": "fallback", "fallback": "f"},
            {"id": "b", "on_failure": "fallback", "fallback": "f"},
            {"id": "f"},
        ]
    }
    assert problems_of(data) == [
        Problem("steps[1] (b).fallback", "'f' is already the fallback of 'a'")
    ]


def test_other_steps_may_not_depend_on_a_fallback() -> None:
    data = {
        "steps": [
            {"id": "a", "args": "x", "on_failure": "fallback", "fallback": "b"},
            {"id": "b", "args": "y"},
            {"id": "c", "args": "z", "depends_on": ["b"]},
        ]
    }
    assert problems_of(data) == [
        Problem(
            "steps (b)",
            "'b' is the fallback of 'a', so it runs only if 'a' fails; "
            "c should depend on 'a' instead",
        )
    ]


def test_a_fallback_may_only_depend_on_ancestors_of_its_primary() -> None:
    data = {
        "steps": [
            {"id": "z", "args": "q"},
            {"id": "a", "args": "x", "on_failure": "fallback", "fallback": "b"},
            {"id": "b", "args": "y", "depends_on": ["z"]},
        ]
    }
    assert problems_of(data) == [
        Problem(
            "steps (b).depends_on",
            "fallback step 'b' may only depend on steps that 'a' depends on; not on z",
        )
    ]


def test_a_fallback_depending_on_its_primarys_ancestors_is_valid() -> None:
    wf = compile_(
        {
            "steps": [
                {"id": "z", "args": "q"},
                {"id": "a", "depends_on": ["z"], "on_failure": "fallback", "fallback": "b"},
                {"id": "b", "args": "${z.output}"},
            ]
        }
    )
    assert wf.fallback_of == {"b": "a"}
    assert sorted(wf.graph.edges) == [("a", "b"), ("z", "a"), ("z", "b")]


def test_every_independent_problem_is_listed_together() -> None:
    data = {
        "type": "swarm",
        "steps": [
            {"id": "a", "depends_on": ["nope"]},
            {"id": "b", "args": "${a}"},
            {"id": "b", "prompt": ""},
        ],
    }
    assert [p.path for p in problems_of(data)] == [
        "type",
        "steps[2].id",
        "steps[0] (a).depends_on[0]",
        "steps[1] (b).args",
        "steps[2] (b)",
    ]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {"id": "s", "command": "/bash"},
            "a shell step needs `argv` or `args` naming the program to run",
        ),
        ({"id": "s", "command": "/query"}, "a prompt step needs `prompt` or `args`"),
        ({"id": "s", "run": "client"}, "a client step needs `prompt` or `args`"),
        ({"id": "s", "op": "json"}, "builtin op 'json' needs `value`"),
    ],
)
def test_steps_missing_what_their_executor_needs_are_rejected(
    step: dict[str, Any], message: str
) -> None:
    assert problems_of({"steps": [step]}) == [Problem("steps[0] (s)", message)]


def test_template_references_become_implicit_dependencies() -> None:
    wf = compile_(
        {
            "steps": [
                {"id": "a", "args": "x"},
                {"id": "b", "args": "y"},
                {"id": "c", "depends_on": ["a"], "args": "${a.output} ${b.results}"},
            ]
        }
    )
    assert wf.deps == {"a": (), "b": (), "c": ("a", "b")}
    assert wf.implicit == {("b", "c")}
    assert wf.dependents == {"a": ("c",), "b": ("c",), "c": ()}
    assert wf.upstream_refs == {"a": 0, "b": 0, "c": 2}


def test_the_order_is_topological_and_keeps_spec_order_among_ready_steps() -> None:
    wf = compile_(
        {
            "steps": [
                {"id": "late", "depends_on": ["early"]},
                {"id": "x"},
                {"id": "early"},
            ]
        }
    )
    assert wf.order == ["x", "early", "late"]
