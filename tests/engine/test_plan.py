"""Planning: parallel groups, critical path, estimates, mode choice, thinking, Mermaid."""

from __future__ import annotations

from typing import Any

from engine.models import ModelTable
from engine.plan import Plan, make_plan
from engine.spec import ExecutorKind, Mode, ThinkingMode, parse_spec
from engine.workflow import compile_workflow
from tests.seed import SEED_CHAIN

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
