"""`if` / `then` / `else` blocks (issue 13, item 4): the branch taken runs, the branch not
taken is recorded `skipped` with the block's condition and its value, the block's own step
carries the taken branch's output to its dependents, and everything is checked before the
run with paths into the spec as written."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.engine.test_failure_policies import ScriptedExecutor
from tutti_mcp.engine.config import EngineConfig
from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.executors.builtin import BuiltinExecutor
from tutti_mcp.engine.executors.client import ClientExecutor
from tutti_mcp.engine.plan import make_plan
from tutti_mcp.engine.service import Engine
from tutti_mcp.engine.spec import ExecutorKind, parse_spec
from tutti_mcp.engine.workflow import Workflow, compile_workflow
from tutti_mcp.memory.runs.history import DecisionHistory
from tutti_mcp.memory.runs.mem_store import InMemoryRunStore
from tutti_mcp.memory.runs.records import RunRecord

pytestmark = pytest.mark.anyio

THEN_TRUE = "condition is true: ${tests.output.failed > 0} (else branch of 'check')"
THEN_FALSE = "condition is false: ${tests.output.failed > 0} (then branch of 'check')"

CI = {
    "name": "ci",
    "inputs": {"failed": {"type": "integer", "default": 0}},
    "steps": [
        {"id": "tests", "op": "json", "value": {"failed": "${inputs.failed}"}},
        {
            "id": "check",
            "if": "${tests.output.failed > 0}",
            "then": [
                {"id": "fix", "args": "fix ${tests.output.failed}"},
                {"id": "verify", "args": "verified: ${fix.output}"},
            ],
            "else": [{"id": "ship", "args": "shipped"}],
        },
        {"id": "report", "args": "report: ${check.output}"},
    ],
}


def make_engine(executor: Any = None) -> tuple[Engine, InMemoryRunStore]:
    store = InMemoryRunStore()
    builtin = executor or BuiltinExecutor()
    return Engine(store, {ExecutorKind.BUILTIN: builtin}, EngineConfig(rand=lambda: 0.5)), store


async def run(spec: dict[str, Any], inputs: dict[str, Any] | None = None) -> RunRecord:
    engine, _ = make_engine()
    with anyio.fail_after(5):
        return await engine.run(spec, inputs)


def outcome(run: RunRecord) -> dict[str, tuple[str, Any, Any]]:
    """Each step's status, output, and skip reason."""
    return {
        sid: (rec.status.value, rec.output, (rec.detail or {}).get("reason"))
        for sid, rec in run.steps.items()
    }


def problems_of(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        compile_workflow(parse_spec(data))
    return info.value.problems


def compiled(data: dict[str, Any]) -> Workflow:
    return compile_workflow(parse_spec(data))


# -- running -----------------------------------------------------------------------------------
async def test_when_the_condition_holds_then_runs_else_is_skipped_and_dependents_read_then() -> (
    None
):
    done = await run(CI, {"failed": 2})
    assert (done.status.value, outcome(done)) == (
        "succeeded",
        {
            "tests": ("succeeded", {"failed": 2}, None),
            "fix": ("succeeded", "fix 2", None),
            "verify": ("succeeded", "verified: fix 2", None),
            "ship": ("skipped", None, THEN_TRUE),
            "check": ("succeeded", "verified: fix 2", None),
            "report": ("succeeded", "report: verified: fix 2", None),
        },
    )


async def test_when_the_condition_is_false_else_runs_and_every_then_step_names_the_condition() -> (
    None
):
    done = await run(CI, {"failed": 0})
    assert (done.status.value, outcome(done)) == (
        "succeeded",
        {
            "tests": ("succeeded", {"failed": 0}, None),
            "fix": ("skipped", None, THEN_FALSE),
            # its dependency was skipped first, but what skipped the branch is the condition
            "verify": ("skipped", None, THEN_FALSE),
            "ship": ("succeeded", "shipped", None),
            "check": ("succeeded", "shipped", None),
            "report": ("succeeded", "report: shipped", None),
        },
    )


async def test_without_else_a_false_condition_skips_then_and_the_block_outputs_null() -> None:
    spec = {
        "steps": [
            {"id": "n", "op": "json", "value": 0},
            {"id": "maybe", "if": "n.output > 1", "then": [{"id": "big", "args": "big"}]},
            {"id": "after", "op": "json", "value": {"got": "${maybe.output}"}},
        ]
    }
    done = await run(spec)
    assert (done.status.value, outcome(done)) == (
        "succeeded",
        {
            "n": ("succeeded", 0, None),
            "big": ("skipped", None, "condition is false: n.output > 1 (then branch of 'maybe')"),
            "maybe": ("succeeded", None, None),
            "after": ("succeeded", {"got": None}, None),
        },
    )


async def test_the_block_output_keeps_its_json_shape_for_dependents_to_read_into() -> None:
    spec = {
        "steps": [
            {
                "id": "pick",
                "if": "true",
                "then": [{"id": "a", "op": "json", "value": {"files": ["x.py", "y.py"]}}],
                "else": [{"id": "b", "op": "json", "value": {"files": []}}],
            },
            {"id": "first", "args": "${pick.output.files[0]} of ${pick.output.files | length}"},
        ]
    }
    done = await run(spec)
    assert (done.steps["pick"].output, done.steps["first"].output) == (
        {"files": ["x.py", "y.py"]},
        "x.py of 2",
    )


NESTED = {
    "inputs": {"deploy": True, "prod": False},
    "steps": [
        {
            "id": "outer",
            "if": "inputs.deploy",
            "then": [
                {"id": "build", "args": "built"},
                {
                    "id": "where",
                    "if": "inputs.prod",
                    "depends_on": ["build"],
                    "then": [{"id": "prod", "args": "prod after ${build.output}"}],
                    "else": [{"id": "staging", "args": "staging after ${build.output}"}],
                },
            ],
            "else": [{"id": "skip_all", "args": "nothing to deploy"}],
        },
        {"id": "done", "args": "done: ${outer.output}"},
    ],
}


@pytest.mark.parametrize(
    ("inputs", "ran", "output"),
    [
        ({"deploy": True, "prod": True}, {"build", "prod"}, "prod after built"),
        ({"deploy": True, "prod": False}, {"build", "staging"}, "staging after built"),
        ({"deploy": False, "prod": True}, {"skip_all"}, "nothing to deploy"),
    ],
)
async def test_nested_blocks_run_exactly_the_branches_their_conditions_choose(
    inputs: dict[str, Any], ran: set[str], output: str
) -> None:
    done = await run(NESTED, inputs)
    leaves = {"build", "prod", "staging", "skip_all"}
    assert done.status.value == "succeeded"
    assert {s for s in leaves if done.steps[s].status.value == "succeeded"} == ran
    assert {s for s in leaves if done.steps[s].status.value == "skipped"} == leaves - ran
    assert (done.steps["outer"].output, done.steps["done"].output) == (output, f"done: {output}")


async def test_a_nested_block_in_the_branch_not_taken_is_skipped_by_the_outer_condition() -> None:
    done = await run(NESTED, {"deploy": False, "prod": True})
    outer_true = "condition is false: inputs.deploy (then branch of 'outer')"
    assert {s: outcome(done)[s] for s in ("build", "prod", "staging", "where")} == {
        "build": ("skipped", None, outer_true),
        "prod": ("skipped", None, outer_true),
        "staging": ("skipped", None, outer_true),
        "where": ("skipped", None, outer_true),
    }


async def test_a_step_with_its_own_when_in_a_branch_needs_both_conditions() -> None:
    spec = {
        "inputs": {"n": 5},
        "steps": [
            {
                "id": "blk",
                "if": "inputs.n > 1",
                "then": [
                    {"id": "large", "when": "inputs.n >= 3", "args": "large"},
                    {"id": "small", "when": "inputs.n < 3", "args": "small"},
                ],
            }
        ],
    }
    done = await run(spec)
    assert outcome(done) == {
        "large": ("succeeded", "large", None),
        "small": ("skipped", None, "condition is false: inputs.n < 3"),
        # the branch's last step was skipped by its own condition: nothing to pass on
        "blk": ("succeeded", None, None),
    }


# -- what is recorded --------------------------------------------------------------------------
async def test_each_decision_records_the_block_condition_and_its_real_value() -> None:
    engine, store = make_engine()
    with anyio.fail_after(5):
        first = await engine.run(CI, {"failed": 2})
        await engine.run(CI, {"failed": 0})
        history = await store.workflow_history("ci")
    events = [(e.step_id, e.data or {}) for _, _, e in await store.events(first.id)]
    cond = "${tests.output.failed > 0}"
    assert [(s, d) for s, d in events if d.get("when")] == [
        ("fix", {"when": cond, "result": True}),
        ("verify", {"when": cond, "result": True}),
        # the else step is skipped because the condition is true: true is recorded
        ("ship", {"when": cond, "result": True}),
    ]
    assert history.decisions == {
        "fix": DecisionHistory("fix", cond, 1, 1, 0),
        "verify": DecisionHistory("verify", cond, 1, 1, 0),
        "ship": DecisionHistory("ship", cond, 1, 1, 0),
    }


async def test_a_condition_that_cannot_be_evaluated_skips_both_branches_saying_why() -> None:
    spec = {
        "steps": [
            {"id": "src", "op": "json", "value": {}},
            {
                "id": "blk",
                "if": "src.output.missing > 1",
                "then": [{"id": "a", "args": "a"}],
                "else": [{"id": "b", "args": "b"}],
            },
        ]
    }
    done = await run(spec)
    why = (
        "condition could not be evaluated: 'src.output.missing > 1': "
        "'dict object' has no attribute 'missing'"
    )
    assert (done.status.value, outcome(done)) == (
        "succeeded",
        {
            "src": ("succeeded", {}, None),
            "a": ("skipped", None, why),
            "b": ("skipped", None, why),
            "blk": ("succeeded", None, None),
        },
    )


# -- resume --------------------------------------------------------------------------------------
async def test_resume_after_a_failure_in_a_branch_runs_only_what_had_not_committed() -> None:
    engine, store = make_engine(ScriptedExecutor(fails={"verify": 1}))
    with anyio.fail_after(5):
        failed = await engine.run(CI, {"failed": 3})
    assert (failed.status.value, {s: r.status.value for s, r in failed.steps.items()}) == (
        "failed",
        {
            "tests": "succeeded",
            "fix": "succeeded",
            "verify": "failed",
            "ship": "skipped",
            "check": "pending",
            "report": "pending",
        },
    )
    fixed = ScriptedExecutor()
    engine.executors[ExecutorKind.BUILTIN] = fixed
    with anyio.fail_after(5):
        resumed = await engine.resume(failed.id)  # compiled again from the stored spec
        history = await store.workflow_history("ci")
    assert fixed.calls == [("verify", 2), ("check", 1), ("report", 1)]
    assert (resumed.status.value, resumed.steps["report"].output) == (
        "succeeded",
        "report: verified: fix 3",
    )
    assert resumed.steps["ship"].detail == {"reason": THEN_TRUE}
    # `fix` ran before the failure: its decision counts with the block's condition
    cond = "${tests.output.failed > 0}"
    assert {s: (d.condition, d.taken, d.not_taken) for s, d in history.decisions.items()} == {
        "fix": (cond, 1, 0),
        "verify": (cond, 1, 0),
        "ship": (cond, 1, 0),
    }


async def test_a_fork_with_an_input_the_condition_reads_changed_redoes_the_block() -> None:
    engine, _ = make_engine()
    spec = {
        "inputs": {"go": True},
        "steps": [
            {"id": "base", "args": "base"},
            {
                "id": "blk",
                "if": "inputs.go",
                "depends_on": ["base"],
                "then": [{"id": "yes", "args": "yes"}],
                "else": [{"id": "no", "args": "no"}],
            },
        ],
    }
    with anyio.fail_after(5):
        parent = await engine.run(spec)
        _, kept = await engine.fork(parent.id, inputs={"go": False})
    assert kept == ["base"]


async def test_a_model_step_inside_a_block_is_stored_with_the_executor_it_was_planned_on() -> None:
    store = InMemoryRunStore()
    engine = Engine(
        store,
        {ExecutorKind.BUILTIN: BuiltinExecutor(), ExecutorKind.CLIENT: ClientExecutor()},
        EngineConfig(model_executor=ExecutorKind.CLIENT),
    )
    spec = {"steps": [{"id": "b", "if": "true", "then": [{"id": "ask", "prompt": "hello"}]}]}
    run_id = await engine.create_run(spec)
    stored = (await store.load_run(run_id)).spec
    assert stored == {
        "defaults": {"model_executor": "client"},
        "steps": [{"id": "b", "if": "true", "then": [{"id": "ask", "prompt": "hello"}]}],
    }


# -- validation -----------------------------------------------------------------------------------
def test_problems_inside_blocks_name_their_path_in_the_spec_as_written() -> None:
    spec = {
        "steps": [
            {"id": "tests", "args": "a"},
            {
                "id": "check",
                "if": "${tests.output == 'x' and testz.output}",
                "depends_on": ["test"],
                "then": [{"id": "ok", "args": "ok"}],
                "else": [
                    {"id": "fix", "command": "/task", "depends_on": ["tests", "fixx"]},
                ],
            },
            {"id": "ok", "args": "again"},
        ]
    }
    assert problems_of(spec) == [
        Problem("steps[2].id", "duplicate step id 'ok' (also steps[1].then[0])"),
        Problem("steps[1] (check).else[0] (fix)", "a prompt step needs `prompt` or `args`"),
        Problem(
            "steps[1] (check).else[0] (fix).depends_on[1]",
            "unknown step 'fixx'; did you mean 'fix'?",
        ),
        Problem("steps[1] (check).depends_on[0]", "unknown step 'test'; did you mean 'tests'?"),
        Problem(
            "steps[1] (check).if",
            "unknown step or name 'testz' in template; did you mean 'tests'?",
        ),
    ]


def test_shape_errors_inside_blocks_name_their_path_in_the_spec_as_written() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(
            {
                "steps": [
                    {"id": "x"},
                    {
                        "id": "b",
                        "if": "true",
                        "then": [{"id": "c"}],
                        "else": [{"id": "d", "timout": 3}],
                    },
                ]
            }
        )
    assert info.value.problems == [Problem("steps[1] (b).else[0] (d).timout", "unknown field")]


def test_a_block_with_fields_of_a_step_is_refused_naming_each_field() -> None:
    spec = {
        "steps": [
            {
                "id": "b",
                "if": "true",
                "then": [{"id": "c"}],
                "prompt": "p",
                "when": "false",
                "timeout": 3,
            }
        ]
    }
    put_inside = "; put `{0}` on a step inside them"
    own = "an if block has no `{0}` of its own (it runs the steps of `then` or `else`)"
    assert problems_of(spec) == [
        Problem("steps[0] (b).prompt", (own + put_inside).format("prompt")),
        Problem("steps[0] (b).timeout", (own + put_inside).format("timeout")),
        Problem(
            "steps[0] (b).when",
            "an if block's condition is its `if`: combine both there (`if: ${a and b}`), or put "
            "`when` on steps inside `then` or `else`",
        ),
    ]


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (
            {"id": "b", "then": [{"id": "c"}]},
            Problem(
                "steps[0] (b).then",
                "`then` belongs to an if block: add `if: <condition>` to this step",
            ),
        ),
        (
            {"id": "b", "if": "true", "else": [{"id": "c"}]},
            Problem(
                "steps[0] (b).if",
                "an if block needs `then`: the steps to run when the condition holds",
            ),
        ),
    ],
)
def test_a_block_without_if_or_then_is_refused(step: dict[str, Any], problem: Problem) -> None:
    assert problems_of({"steps": [step]}) == [problem]


def test_a_block_that_needs_a_step_inside_it_is_refused() -> None:
    spec = {
        "steps": [
            {
                "id": "b",
                "if": "c.output",
                "depends_on": ["c"],
                "then": [{"id": "c", "args": "c"}],
            }
        ]
    }
    why = "its steps would wait for their own block; depend on a step before the block"
    assert problems_of(spec) == [
        Problem(
            "steps[0] (b).depends_on[0]", f"block 'b' cannot need 'c', a step inside it: {why}"
        ),
        Problem("steps[0] (b).if", f"block 'b' cannot need 'c', a step inside it: {why}"),
    ]


def test_a_cycle_through_a_block_is_reported_like_any_other() -> None:
    spec = {
        "steps": [
            {"id": "start", "args": "${late.output}"},
            {"id": "b", "if": "true", "then": [{"id": "inner", "args": "${start.output}"}]},
            {"id": "late", "args": "${b.output}"},
        ]
    }
    assert problems_of(spec) == [
        Problem(
            "steps",
            "dependency cycle: start -> inner -> b -> late -> start (remove one of these edges)",
        )
    ]


def test_a_step_inside_a_block_that_reads_the_block_is_a_cycle() -> None:
    spec = {"steps": [{"id": "b", "if": "true", "then": [{"id": "c", "args": "${b.output}"}]}]}
    assert problems_of(spec) == [
        Problem("steps", "dependency cycle: c -> b -> c (remove one of these edges)")
    ]


# -- planning ------------------------------------------------------------------------------------
def test_steps_of_a_branch_wait_for_the_block_needs_and_the_block_for_its_branches() -> None:
    wf = compiled(NESTED)
    assert wf.order == ["build", "prod", "staging", "where", "skip_all", "outer", "done"]
    assert wf.deps == {
        "build": (),
        "prod": ("build",),
        "staging": ("build",),
        "where": ("prod", "staging"),
        "skip_all": (),
        "outer": ("where", "skip_all"),
        "done": ("outer",),
    }


def test_the_first_steps_of_a_branch_need_what_the_block_and_its_condition_need() -> None:
    wf = compiled(
        {
            "steps": [
                {"id": "a", "args": "a"},
                {"id": "flag", "op": "json", "value": True},
                {
                    "id": "blk",
                    "if": "flag.output",
                    "depends_on": ["a"],
                    "then": [{"id": "x", "args": "x"}, {"id": "y", "args": "${x.output}"}],
                    "else": [{"id": "z", "args": "z"}],
                },
            ]
        }
    )
    assert wf.deps == {
        "a": (),
        "flag": (),
        "x": ("a", "flag"),
        "y": ("x",),
        "z": ("a", "flag"),
        "blk": ("y", "z"),
    }
    # what the condition reads is drawn as read (dotted), what the block names as needed
    assert sorted(wf.implicit) == [("flag", "x"), ("flag", "z"), ("x", "y")]


def test_the_plan_draws_a_block_as_a_subgraph_and_counts_one_branch_of_it() -> None:
    plan = make_plan(compiled(CI))
    assert plan.mermaid.splitlines() == [
        "flowchart TD",
        '  tests["tests<br/>builtin"]',
        '  subgraph check__if ["check: if tests.output.failed #gt; 0"]',
        '    subgraph check__then ["then"]',
        '      fix["fix<br/>builtin"]',
        '      verify["verify<br/>builtin"]',
        "    end",
        '    subgraph check__else ["else"]',
        '      ship["ship<br/>builtin"]',
        "    end",
        '    check(["check<br/>end if"])',
        "  end",
        '  report["report<br/>builtin"]',
        "  tests -.-> fix",
        "  fix -.-> verify",
        "  tests -.-> ship",
        "  verify --> check",
        "  ship --> check",
        "  check -.-> report",
        "  classDef critical stroke-width:3px",
        "  class tests,fix,verify,check,report critical",
    ]
    assert (plan.mode.value, plan.mode_reason) == (
        "flow",
        "flow: if block check chooses between its branches",
    )
    # then and else exclude each other: one by one, only the longer branch counts
    assert plan.alternatives == [["fix", "verify", "ship"]]
    assert plan.sequential_s == pytest.approx(5 * 0.01)


def test_a_step_inside_a_block_with_the_blocks_own_id_is_reported_once_as_a_duplicate() -> None:
    spec = {"steps": [{"id": "a", "if": "true", "then": [{"id": "a", "args": "x"}]}]}
    assert problems_of(spec) == [
        Problem("steps[0].id", "duplicate step id 'a' (also steps[0].then[0])")
    ]
