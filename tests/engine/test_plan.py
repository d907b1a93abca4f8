"""Planning: parallel groups, critical path, estimates, mode choice, thinking, Mermaid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.seed import SEED_CHAIN
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.engine.plan import Plan, make_plan
from tutti_mcp.engine.spec import ExecutorKind, Mode, ThinkingMode, load_spec_file, parse_spec
from tutti_mcp.engine.workflow import compile_workflow

ROOT = Path(__file__).resolve().parents[2]

DIAMOND: dict[str, Any] = {
    "name": "diamond",
    "steps": [
        {"id": "a", "args": "x", "estimate_s": 2},
        {"id": "b", "args": "${a.output}", "estimate_s": 3},
        {"id": "c", "depends_on": ["a"], "args": "y", "estimate_s": 1},
        {"id": "d", "depends_on": ["b", "c"], "args": "z", "estimate_s": 4},
        {"id": "e", "args": "w", "estimate_s": 1},
    ],
}


def plan_of(data: dict[str, Any], **kw: Any) -> Plan:
    return make_plan(compile_workflow(parse_spec(data)), **kw)


def test_groups_are_the_topological_generations_in_spec_order() -> None:
    assert plan_of(DIAMOND).groups == [["a", "e"], ["b", "c"], ["d"]]


def test_the_critical_path_follows_the_longest_estimated_chain() -> None:
    plan = plan_of(DIAMOND)
    assert (plan.critical_path, plan.critical_path_s) == (["a", "b", "d"], 9.0)


def test_speedup_is_sequential_time_over_critical_path_time() -> None:
    plan = plan_of(DIAMOND)
    assert (plan.sequential_s, plan.estimated_s, round(plan.estimated_speedup, 4)) == (
        11.0,
        9.0,
        round(11 / 9, 4),
    )


def test_the_concurrency_cap_bounds_the_estimate_from_below() -> None:
    plan = plan_of({**DIAMOND, "max_concurrency": 1})
    assert (plan.estimated_s, plan.estimated_speedup) == (11.0, 1.0)


def test_without_parallelism_the_estimate_is_the_sequential_time() -> None:
    plan = plan_of({**DIAMOND, "optimization": {"parallel_where_possible": False}})
    assert (plan.estimated_s, plan.estimated_speedup) == (11.0, 1.0)


def test_measured_history_is_used_when_a_step_gives_no_estimate() -> None:
    data = {
        "steps": [
            {"id": "a", "args": "x"},
            {"id": "b", "args": "y"},
            {"id": "c", "args": "z", "estimate_s": 0.5},
        ]
    }
    plan = plan_of(data, history_s={"b": 7.0, "c": 99.0})
    assert {s.id: s.estimate_s for s in plan.steps.values()} == {"a": 0.01, "b": 7.0, "c": 0.5}
    assert (plan.critical_path, plan.critical_path_s) == (["b"], 7.0)


def test_priority_is_the_longest_remaining_path_from_each_step() -> None:
    plan = plan_of(DIAMOND)
    assert {s.id: s.priority for s in plan.steps.values()} == {
        "a": 9.0,
        "b": 7.0,
        "c": 5.0,
        "d": 4.0,
        "e": 1.0,
    }


def test_implicit_edges_from_templates_are_listed() -> None:
    plan = plan_of(DIAMOND)
    assert plan.implicit_edges == [("a", "b")]
    assert plan.steps["b"].depends_on == ("a",)


def test_mermaid_shows_steps_edges_implicit_edges_and_the_critical_path() -> None:
    assert plan_of(DIAMOND).mermaid == "\n".join(
        [
            "flowchart TD",
            '  a["a<br/>builtin"]',
            '  b["b<br/>builtin"]',
            '  c["c<br/>builtin"]',
            '  d["d<br/>builtin"]',
            '  e["e<br/>builtin"]',
            "  a -.-> b",
            "  a --> c",
            "  b --> d",
            "  c --> d",
            "  classDef critical stroke-width:3px",
            "  class a,b,d critical",
        ]
    )


def test_mermaid_draws_conditional_steps_as_decisions_and_fallbacks_as_failure_edges() -> None:
    plan = plan_of(
        {
            "steps": [
                {"id": "a", "args": "x", "on_failure": "fallback", "fallback": "f"},
                {"id": "f", "args": "y"},
                {"id": "b", "when": "a.output == 'x'", "args": "z"},
            ]
        }
    )
    assert plan.mermaid == "\n".join(
        [
            "flowchart TD",
            '  a["a<br/>builtin"]',
            '  f["f<br/>builtin"]',
            '  b{"b<br/>builtin"}',
            "  a -.-> b",
            "  a -. on failure .-> f",
            "  classDef critical stroke-width:3px",
            "  class a,b critical",
        ]
    )


def test_auto_mode_picks_chain_when_there_are_no_conditions() -> None:
    plan = plan_of(DIAMOND)
    assert (plan.mode, plan.mode_reason) == (Mode.CHAIN, "chain: plain dependencies, no conditions")


def test_auto_mode_picks_flow_when_steps_have_conditions_and_names_them() -> None:
    plan = plan_of(
        {
            "steps": [
                {"id": "a", "args": "x"},
                {"id": "b", "when": "a.output == 'x'", "args": "y"},
                {"id": "c", "when": "${a.output != 'x'}", "args": "z"},
            ]
        }
    )
    assert (plan.mode, plan.mode_reason) == (
        Mode.FLOW,
        "flow: steps b, c run only when their condition holds",
    )


def test_an_explicit_mode_is_kept_and_said_to_be_asked_for() -> None:
    plan = plan_of({**DIAMOND, "type": "flow"})
    assert (plan.mode, plan.mode_reason) == (Mode.FLOW, "the spec asks for flow")


def test_fallback_steps_are_left_out_of_groups_and_sequential_time() -> None:
    plan = plan_of(
        {
            "steps": [
                {
                    "id": "a",
                    "args": "x",
                    "estimate_s": 2,
                    "on_failure": "fallback",
                    "fallback": "f",
                },
                {"id": "f", "args": "y", "estimate_s": 5},
                {"id": "b", "args": "${a.output}", "estimate_s": 1},
            ]
        }
    )
    assert (plan.groups, plan.sequential_s, plan.critical_path, plan.critical_path_s) == (
        [["a"], ["b"]],
        3.0,
        ["a", "b"],
        3.0,
    )


def test_a_slow_fallback_is_not_on_the_critical_path() -> None:
    # A fallback runs only when its primary fails; the planned critical path, like the
    # groups and the sequential time, must follow the steps that normally run.
    plan = plan_of(
        {
            "steps": [
                {"id": "z", "args": "x", "estimate_s": 1},
                {
                    "id": "a",
                    "depends_on": ["z"],
                    "args": "a",
                    "estimate_s": 1,
                    "on_failure": "fallback",
                    "fallback": "b",
                },
                {"id": "b", "depends_on": ["z"], "args": "b", "estimate_s": 100},
                {"id": "c", "args": "${a.output}", "estimate_s": 1},
            ]
        }
    )
    assert (plan.critical_path, plan.critical_path_s, plan.sequential_s, plan.estimated_s) == (
        ["z", "a", "c"],
        3.0,
        3.0,
        3.0,
    )


def test_thinking_per_model_step_is_shown_with_its_reason_and_model() -> None:
    plan = plan_of(SEED_CHAIN).to_dict()
    assert {
        sid: (s["executor"], s["model"], s["thinking"], s["thinking_reason"], s["estimate_s"])
        for sid, s in plan["steps"].items()
    } == {
        "analyze_codebase": (
            "prompt",
            "claude-sonnet-5-5",
            "standard",
            "auto: score 6.0/10 -> standard "
            "(base 2; /query +1.0; keywords analyze, security, vulnerabilities +3.0)",
            20.0,
        ),
        "fix_issues": (
            "prompt",
            "claude-sonnet-5-5",
            "standard",
            "auto: score 6.0/10 -> standard "
            "(base 2; 1 upstream inputs +0.5; /task +2.0; keywords security +1.5)",
            20.0,
        ),
        "validate_fixes": (
            "prompt",
            "claude-sonnet-5-5",
            "standard",
            "auto: score 5.0/10 -> standard (base 2; /protocol +1.5; keywords security +1.5)",
            20.0,
        ),
    }


def test_model_step_estimates_follow_the_thinking_mode_and_non_model_steps_have_none() -> None:
    plan = plan_of(
        {
            "defaults": {"model": "haiku"},
            "steps": [
                {"id": "quick", "prompt": "hi", "thinking": "instant"},
                {"id": "deep", "prompt": "hi", "thinking": "extended", "model": "opus"},
                {"id": "shell", "argv": ["ls"]},
                {"id": "ask", "run": "client", "prompt": "hi", "thinking": "standard"},
            ],
        },
        models=ModelTable(),
    )
    assert {
        s.id: (s.executor, s.model, s.thinking.mode if s.thinking else None, s.estimate_s)
        for s in plan.steps.values()
    } == {
        "quick": (ExecutorKind.PROMPT, "claude-haiku-4-5", ThinkingMode.INSTANT, 5.0),
        "deep": (ExecutorKind.PROMPT, "claude-opus-5-5", ThinkingMode.EXTENDED, 60.0),
        "shell": (ExecutorKind.SHELL, None, None, 1.0),
        "ask": (ExecutorKind.CLIENT, "claude-haiku-4-5", ThinkingMode.STANDARD, 60.0),
    }


def test_to_dict_is_the_whole_plan_as_json_values() -> None:
    data = plan_of(
        {"name": "two", "steps": [{"id": "a", "args": "x"}, {"id": "b", "args": "${a.output}"}]}
    ).to_dict()
    assert data == {
        "name": "two",
        "mode": "chain",
        "mode_reason": "chain: plain dependencies, no conditions",
        "groups": [["a"], ["b"]],
        "critical_path": ["a", "b"],
        "critical_path_s": 0.02,
        "sequential_s": 0.02,
        "estimated_s": 0.02,
        "estimated_speedup": 1.0,
        "implicit_edges": [["a", "b"]],
        "alternatives": [],
        "steps": {
            "a": {
                "executor": "builtin",
                "depends_on": [],
                "estimate_s": 0.01,
                "model": None,
                "thinking": None,
                "thinking_reason": None,
                "api_params": None,
                "api_params_why": None,
                "shape": None,
            },
            "b": {
                "executor": "builtin",
                "depends_on": ["a"],
                "estimate_s": 0.01,
                "model": None,
                "thinking": None,
                "thinking_reason": None,
                "api_params": None,
                "api_params_why": None,
                "shape": None,
            },
        },
        "mermaid": "\n".join(
            [
                "flowchart TD",
                '  a["a<br/>builtin"]',
                '  b["b<br/>builtin"]',
                "  a -.-> b",
                "  classDef critical stroke-width:3px",
                "  class a,b critical",
            ]
        ),
    }


# -- branches that exclude each other ------------------------------------------------------
def triage(**estimates: float) -> dict[str, Any]:
    """examples/triage.yaml's shape: measure, then one branch or the other, then a verdict."""
    return {
        "name": "triage",
        "steps": [
            {"id": "sizes", "args": "3 1", "estimate_s": estimates.get("sizes", 4)},
            {"id": "large", "value": "${sizes.output.split()}", "estimate_s": 1},
            {
                "id": "split_advice",
                "when": "${large.output | length > 0}",
                "args": "split",
                "estimate_s": estimates.get("split_advice", 10),
            },
            {
                "id": "all_small",
                "when": "${large.output | length == 0}",
                "args": "fine",
                "estimate_s": estimates.get("all_small", 6),
            },
            {
                "id": "verdict",
                "depends_on": ["split_advice", "all_small"],
                "trigger": "all_done",
                "args": "done",
                "estimate_s": 1,
            },
        ],
    }


def test_one_by_one_counts_only_the_longest_of_two_branches_that_exclude_each_other() -> None:
    plan = plan_of(triage())
    assert plan.alternatives == [["split_advice", "all_small"]]
    # 4 + 1 + max(10, 6) + 1, not 4 + 1 + 10 + 6 + 1: one branch runs, so nothing runs
    # in parallel and there is no speedup to promise
    assert (plan.sequential_s, plan.critical_path_s, plan.estimated_speedup) == (16, 16, 1.0)
    assert plan.to_dict()["alternatives"] == [["split_advice", "all_small"]]


def test_the_shipped_triage_example_promises_no_speedup() -> None:
    plan = make_plan(compile_workflow(load_spec_file(ROOT / "examples" / "triage.yaml")))
    assert plan.alternatives == [["split_advice", "all_small"]]
    assert plan.sequential_s == plan.critical_path_s and plan.estimated_speedup == 1.0


def test_a_branch_takes_along_the_steps_that_run_only_through_it() -> None:
    data = triage(split_advice=3, all_small=6)
    data["steps"].insert(3, {"id": "plan_split", "args": "${split_advice.output}", "estimate_s": 5})
    plan = plan_of(data)
    # the split branch is 3 + 5 = 8 against 6 for the other; verdict waits for either
    assert plan.sequential_s == 4 + 1 + 8 + 1


def test_a_switch_on_one_value_counts_its_longest_case() -> None:
    cases = {"a": 2.0, "b": 7.0, "c": 3.0}
    steps = [{"id": "pick", "args": "b", "estimate_s": 1}] + [
        {"id": f"on_{k}", "when": f"pick.output == '{k}'", "args": k, "estimate_s": s}
        for k, s in cases.items()
    ]
    plan = plan_of({"steps": steps})
    assert plan.alternatives == [["on_a", "on_b", "on_c"]]
    assert plan.sequential_s == 1 + 7


@pytest.mark.parametrize(
    ("first", "second", "apart"),
    [
        ("inputs.n > 0", "not (inputs.n > 0)", True),
        ("inputs.n < 3", "inputs.n >= 3", True),
        ("inputs.n < 0", "inputs.n > 5", True),
        ("inputs.s in ['x', 'y']", "inputs.s not in ['x', 'y']", True),
        ("inputs.n > 0", "inputs.n < 5", False),  # 1 satisfies both
        ("inputs.n >= 0", "inputs.n <= 0", False),  # 0 does
        ("inputs.s == 'a'", "inputs.s != 'b'", False),
        ("inputs.n > 0", "inputs.m == 0", False),  # about different values
        ("inputs.n | random > 0", "inputs.n | random <= 0", False),  # not repeatable
    ],
)
def test_only_conditions_that_cannot_both_hold_are_alternatives(
    first: str, second: str, apart: bool
) -> None:
    plan = plan_of(
        {
            "inputs": {"n": {"default": 1}, "m": {"default": 1}, "s": {"default": "x"}},
            "steps": [
                {"id": "first", "args": "1", "estimate_s": 1},
                {"id": "one", "when": first, "depends_on": ["first"], "args": "x", "estimate_s": 2},
                {
                    "id": "two",
                    "when": second,
                    "depends_on": ["first"],
                    "args": "y",
                    "estimate_s": 3,
                },
            ],
        }
    )
    assert plan.sequential_s == (1 + 3 if apart else 1 + 2 + 3)
