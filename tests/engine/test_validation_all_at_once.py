"""compile_workflow reports every independent problem of a spec in one SpecError (issue 13,
item 7): a dependency cycle among the valid references is listed beside unknown
references, self-references and fallback problems, not only once they are fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.spec import parse_spec
from tutti_mcp.engine.workflow import compile_workflow

ROOT = Path(__file__).resolve().parents[2]


def problems_of(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        compile_workflow(parse_spec(data))
    return info.value.problems


def cycle(*steps: str) -> Problem:
    return Problem(
        "steps", "dependency cycle: " + " -> ".join(steps) + " (remove one of these edges)"
    )


UNKNOWN_AND_CYCLE = {
    "steps": [
        {"id": "analyze", "args": "x"},
        {"id": "fix", "args": "y", "depends_on": ["analyse"]},
        {"id": "a", "depends_on": ["c"]},
        {"id": "b", "depends_on": ["a"]},
        {"id": "c", "depends_on": ["b"]},
    ]
}

# Two separate cycles (p <-> q through a template, x -> y -> z -> x) and an unknown step.
TWO_CYCLES = {
    "steps": [
        {"id": "z", "depends_on": ["y"]},
        {"id": "p", "args": "${q.output}"},
        {"id": "x", "depends_on": ["z", "nosuch"]},
        {"id": "q", "depends_on": ["p"]},
        {"id": "y", "depends_on": ["x"]},
    ]
}


def test_an_unknown_reference_and_a_cycle_are_reported_together() -> None:
    assert problems_of(UNKNOWN_AND_CYCLE) == [
        Problem("steps[1] (fix).depends_on[0]", "unknown step 'analyse'; did you mean 'analyze'?"),
        cycle("a", "b", "c", "a"),
    ]


def test_two_separate_cycles_are_each_reported_beside_the_unknown_step_in_spec_order() -> None:
    # each cycle starts at its step that comes first in the spec, and the cycles are in the
    # order of those steps
    assert problems_of(TWO_CYCLES) == [
        Problem("steps[2] (x).depends_on[1]", "unknown step 'nosuch'; known: z, p, x, q, y"),
        cycle("z", "x", "y", "z"),
        cycle("p", "q", "p"),
    ]


def test_cycles_that_share_a_step_are_reported_once_with_the_shortest_through_the_first() -> None:
    data = {
        "steps": [
            {"id": "a", "depends_on": ["c", "b"]},
            {"id": "b", "depends_on": ["a"]},
            {"id": "c", "depends_on": ["d"]},
            {"id": "d", "depends_on": ["a"]},
        ]
    }
    assert problems_of(data) == [cycle("a", "b", "a")]


def test_a_cycle_is_listed_beside_self_references_field_problems_and_fallback_problems() -> None:
    data = {
        "steps": [
            {"id": "a", "depends_on": ["b"], "on_failure": "fallback", "fallback": "f"},
            {"id": "b", "args": "${a.output}"},
            {"id": "s", "depends_on": ["s"], "args": "${s.output}"},
            {"id": "sh", "run": "shell"},
            {"id": "f", "args": "z", "depends_on": ["sh"]},
            {"id": "g", "depends_on": ["f"]},
        ]
    }
    assert problems_of(data) == [
        Problem("steps[2] (s).depends_on[0]", "a step cannot depend on itself"),
        Problem("steps[2] (s).args", "a step cannot read its own output"),
        Problem("steps[3] (sh)", "a shell step needs `argv` or `args` naming the program to run"),
        cycle("a", "b", "a"),
        Problem(
            "steps (f)",
            "'f' is the fallback of 'a', so it runs only if 'a' fails; g should depend on 'a' "
            "instead",
        ),
        Problem(
            "steps (f).depends_on",
            "fallback step 'f' may only depend on steps that 'a' depends on; not on sh",
        ),
    ]


def test_a_valid_spec_still_compiles_to_the_same_workflow() -> None:
    wf = compile_workflow(
        parse_spec(
            {
                "steps": [
                    {"id": "late", "args": "${early.output}"},
                    {"id": "early", "args": "x", "on_failure": "fallback", "fallback": "spare"},
                    {"id": "spare", "args": "y"},
                ]
            }
        )
    )
    assert wf.order == ["early", "late", "spare"]
    assert wf.deps == {"late": ("early",), "early": (), "spare": ()}
    assert wf.fallback_of == {"spare": "early"}


def test_the_problems_are_listed_in_the_same_order_whatever_the_hash_seed() -> None:
    """Sets of step ids iterate in an order that depends on PYTHONHASHSEED: the list must
    not. Two fresh interpreters with different seeds print the same problems as this one."""
    code = (
        "import json, sys\n"
        "from tutti_mcp.engine.errors import SpecError\n"
        "from tutti_mcp.engine.spec import parse_spec\n"
        "from tutti_mcp.engine.workflow import compile_workflow\n"
        "try:\n"
        "    compile_workflow(parse_spec(json.loads(sys.argv[1])))\n"
        "except SpecError as exc:\n"
        "    print(json.dumps([[p.path, p.message] for p in exc.problems]))\n"
    )
    expected = [[p.path, p.message] for p in problems_of(TWO_CYCLES)]
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(TWO_CYCLES)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        assert json.loads(done.stdout) == expected, f"PYTHONHASHSEED={seed}"
