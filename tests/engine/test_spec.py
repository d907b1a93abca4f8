"""Loading specs from JSON/YAML text and the per-field shape checks of engine.spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.seed import SEED_CHAIN
from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.spec import (
    BuiltinOp,
    ExecutorKind,
    FailurePolicy,
    Mode,
    RetryPolicy,
    load_spec_file,
    load_spec_text,
    parse_spec,
)
from tutti_mcp.engine.workflow import compile_workflow

SEED_CHAIN_YAML = """\
type: chain
steps:
  - id: analyze_codebase
    command: /query
    args: analyze Python security vulnerabilities
    timeout: 300
  - id: fix_issues
    command: /task
    args: "fix security issues: ${analyze_codebase.results}"
    depends_on: [analyze_codebase]
  - id: validate_fixes
    command: /protocol
    args: run security validation
    depends_on: [fix_issues]
optimization:
  parallel_where_possible: true
  adaptive_thinking: true
  state_persistence: true
"""


def problems_of(data: Any) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value.problems


def test_the_seed_chain_example_loads_from_json_as_written() -> None:
    spec = load_spec_text(json.dumps(SEED_CHAIN))
    wf = compile_workflow(spec)

    assert spec.type is Mode.CHAIN
    assert [(s.id, s.command, s.executor) for s in spec.steps] == [
        ("analyze_codebase", "/query", ExecutorKind.PROMPT),
        ("fix_issues", "/task", ExecutorKind.PROMPT),
        ("validate_fixes", "/protocol", ExecutorKind.PROMPT),
    ]
    assert spec.steps[0].timeout == 300
    assert wf.order == ["analyze_codebase", "fix_issues", "validate_fixes"]
    assert wf.deps == {
        "analyze_codebase": (),
        "fix_issues": ("analyze_codebase",),
        "validate_fixes": ("fix_issues",),
    }


def test_the_seed_chain_example_in_yaml_loads_to_the_same_spec_as_the_json() -> None:
    assert load_spec_text(SEED_CHAIN_YAML) == load_spec_text(json.dumps(SEED_CHAIN))


def test_yaml_and_json_files_load_through_load_spec_file(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text(json.dumps(SEED_CHAIN), encoding="utf-8")
    (tmp_path / "w.yaml").write_text(SEED_CHAIN_YAML, encoding="utf-8")

    assert load_spec_file(tmp_path / "w.json") == load_spec_file(tmp_path / "w.yaml")


def test_a_missing_spec_file_is_a_spec_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert info.value.problems == [
        Problem(str(path), "cannot read the spec file: No such file or directory")
    ]


def test_invalid_json_text_is_reported_with_the_parser_position() -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text('{"steps": [', source="bad.json")
    assert info.value.problems == [
        Problem("bad.json", "not valid JSON: line 1, column 12: Expecting value")
    ]


def test_invalid_yaml_text_is_reported_with_line_column_and_problem() -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text("steps: [a, b", source="bad.yaml")
    assert info.value.problems == [
        Problem(
            "bad.yaml",
            "not valid YAML: line 1, column 13: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence)",
        )
    ]


def test_a_spec_that_is_not_a_mapping_is_rejected() -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text("- a\n- b\n", source="list.yaml")
    assert info.value.problems == [Problem("list.yaml", "a workflow spec is a mapping, got list")]
    assert str(info.value) == (
        "workflow spec is invalid (1 problem):\n  - list.yaml: a workflow spec is a mapping, got list"
    )


def test_an_unknown_field_is_named_with_its_step_index_and_id() -> None:
    assert problems_of({"steps": [{"id": "a", "args": "x", "colour": "red"}]}) == [
        Problem("steps[0] (a).colour", "unknown field")
    ]


def test_a_negative_timeout_is_a_bad_field_value_at_steps_0_a_timeout() -> None:
    assert problems_of({"steps": [{"id": "a", "args": "x", "timeout": -1}]}) == [
        Problem("steps[0] (a).timeout", "Input should be greater than 0")
    ]


def test_every_shape_problem_is_listed_at_once_and_the_message_counts_them() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(
            {
                "max_concurrency": 0,
                "steps": [{"id": "a", "args": "x", "timeout": -1}, {"id": "b", "colour": 1}],
            }
        )
    assert str(info.value) == (
        "workflow spec is invalid (3 problems):\n"
        "  - max_concurrency: Input should be greater than or equal to 1\n"
        "  - steps[0] (a).timeout: Input should be greater than 0\n"
        "  - steps[1] (b).colour: unknown field"
    )


def test_an_unknown_command_lists_the_known_commands() -> None:
    assert problems_of({"steps": [{"id": "a", "command": "/frobnicate"}]}) == [
        Problem(
            "steps[0] (a).command",
            "unknown command '/frobnicate'; known commands: /bash, /json, /merge, /parse_json, "
            "/pass, /protocol, /query, /sh, /shell, /task, /template, /wait",
        )
    ]


def test_step_ids_must_be_template_friendly_names() -> None:
    assert problems_of({"steps": [{"id": "fix-issues", "args": "x"}]}) == [
        Problem(
            "steps[0] (fix-issues).id",
            "step id 'fix-issues' must start with a letter or _ and use only letters, digits "
            "and _ (it is used in templates as ${id.output}), at most 64 characters",
        )
    ]


def test_reserved_names_cannot_be_step_ids() -> None:
    assert problems_of({"steps": [{"id": "inputs", "args": "x"}]}) == [
        Problem("steps[0] (inputs).id", "step id 'inputs' is reserved; choose another name")
    ]
    # `${self}` is the template object in jinja2: a step called so could never be read
    assert problems_of({"steps": [{"id": "self", "args": "x"}]}) == [
        Problem("steps[0] (self).id", "step id 'self' is reserved; choose another name")
    ]


def test_a_spec_needs_at_least_one_step() -> None:
    assert problems_of({"steps": []}) == [
        Problem("steps", "List should have at least 1 item after validation, not 0")
    ]


def test_policy_fallback_needs_a_fallback_step_id() -> None:
    assert problems_of({"steps": [{"id": "a", "args": "x", "on_failure": "fallback"}]}) == [
        Problem("steps[0] (a)", "on_failure 'fallback' needs a `fallback` step id")
    ]


def test_a_fallback_id_without_policy_fallback_is_rejected() -> None:
    assert problems_of({"steps": [{"id": "a", "args": "x", "fallback": "b"}]}) == [
        Problem("steps[0] (a)", "`fallback` is set but on_failure is not 'fallback'")
    ]


def test_input_shorthand_is_a_default_value() -> None:
    spec = parse_spec({"inputs": {"path": ".", "n": {"type": "integer"}}, "steps": [{"id": "a"}]})
    assert {k: v.model_dump() for k, v in spec.inputs.items()} == {
        "path": {"type": "string", "default": ".", "required": False, "description": ""},
        "n": {"type": "integer", "default": None, "required": False, "description": ""},
    }


@pytest.mark.parametrize(
    ("step", "kind", "op"),
    [
        ({"id": "s", "command": "/bash ls -l"}, ExecutorKind.SHELL, None),
        ({"id": "s", "argv": ["ls"]}, ExecutorKind.SHELL, None),
        ({"id": "s", "prompt": "hi"}, ExecutorKind.PROMPT, None),
        ({"id": "s", "command": "/task", "args": "do"}, ExecutorKind.PROMPT, None),
        ({"id": "s", "command": "/wait", "value": 1}, ExecutorKind.BUILTIN, BuiltinOp.WAIT),
        ({"id": "s", "value": {"a": 1}}, ExecutorKind.BUILTIN, BuiltinOp.JSON),
        ({"id": "s", "args": "text"}, ExecutorKind.BUILTIN, BuiltinOp.TEMPLATE),
        ({"id": "s"}, ExecutorKind.BUILTIN, BuiltinOp.PASS),
        ({"id": "s", "run": "client", "prompt": "hi"}, ExecutorKind.CLIENT, None),
    ],
)
def test_the_executor_and_builtin_op_are_inferred_from_the_step_fields(
    step: dict[str, Any], kind: ExecutorKind, op: BuiltinOp | None
) -> None:
    parsed = parse_spec({"steps": [step]}).steps[0]
    assert parsed.executor is kind
    if op is not None:
        assert parsed.builtin_op is op


def test_the_bash_command_splits_into_argv_with_args_appended() -> None:
    step = parse_spec(
        {"steps": [{"id": "s", "command": "/bash git log", "args": "--oneline '-n 3'"}]}
    ).steps[0]
    assert step.shell_argv == ["git", "log", "--oneline", "-n 3"]


def test_templated_strings_name_every_field_rendered_at_run_time() -> None:
    step = parse_spec(
        {
            "steps": [
                {
                    "id": "s",
                    "argv": ["echo", "${inputs.x}"],
                    "env": {"K": "v"},
                    "value": {"a": ["${inputs.x}", 1]},
                }
            ],
            "inputs": {"x": "1"},
        }
    ).steps[0]
    assert step.templated_strings() == [
        ("argv[0]", "echo"),
        ("argv[1]", "${inputs.x}"),
        ("env.K", "v"),
        ("value.a[0]", "${inputs.x}"),
    ]


def test_retry_delay_doubles_up_to_the_cap_and_jitter_scales_it() -> None:
    policy = RetryPolicy(attempts=5, backoff_s=1, max_backoff_s=3, jitter=False)
    assert [policy.delay(n, 0.5) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    jittered = RetryPolicy(attempts=5, backoff_s=1, max_backoff_s=3)
    assert [jittered.delay(n, 0.5) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]


def test_failure_policy_defaults_to_fail() -> None:
    assert parse_spec({"steps": [{"id": "a"}]}).steps[0].on_failure is FailurePolicy.FAIL


def test_the_example_file_is_the_seed_chain_as_written() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "seed-chain.json"
    assert json.loads(example.read_text(encoding="utf-8")) == SEED_CHAIN


# -- the memory field ------------------------------------------------------------------------------
FORMS = 'true, false, "workflow", "global", "project", "project:<key>" or "workflow:<name>"'


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (True, "workflow"),
        (False, None),
        (None, None),
        ("workflow", "workflow"),
        ("global", "global"),
        ("project", "project"),
        ("project:/home/me/repo", "project:/home/me/repo"),
        ("workflow:release-notes", "workflow:release-notes"),
    ],
)
def test_the_memory_field_accepts_its_forms(value: Any, stored: str | None) -> None:
    step = parse_spec({"steps": [{"id": "a", "prompt": "p", "memory": value}]}).steps[0]

    assert step.memory == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", f"`memory` must be {FORMS}; got 'yes'"),
        (1, f"`memory` must be {FORMS}; got 1"),
        ("", f"`memory` must be {FORMS}; got ''"),
        ("Global", f"`memory` must be {FORMS}; got 'Global'"),
        ("team:x", f"`memory` must be {FORMS}; got 'team:x'"),
        (["global"], f"`memory` must be {FORMS}; got ['global']"),
        ("project:", "`memory` scope 'project:' needs a key after the colon, e.g. project:my-key"),
        (
            "workflow:a\x07b",
            "`memory` the key of scope workflow: must be printable text of at most 512 characters",
        ),
    ],
)
def test_invalid_memory_values_are_spec_errors_naming_the_field(value: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"steps": [{"id": "a", "prompt": "p", "memory": value}]})

    assert caught.value.problems == [Problem("steps[0] (a).memory", message)]


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        ({"argv": ["git", "log"]}, "shell"),
        ({"command": "/bash ls"}, "shell"),
        ({"args": "hello"}, "builtin"),
        ({"run": "builtin", "prompt": "p"}, "builtin"),
    ],
)
def test_memory_on_a_step_without_a_model_is_a_spec_error_naming_the_step(
    step: dict[str, Any], kind: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"steps": [{"id": "tidy", "memory": True, **step}]})

    assert caught.value.problems == [
        Problem(
            "steps[0] (tidy)",
            f"step 'tidy' runs on {kind}, which has no model to give memory to: `memory` is for "
            "model steps (prompt, client, sampling)",
        )
    ]
