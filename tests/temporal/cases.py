"""The specs the conformance suite runs on both backends, with the caller's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.seed import SEED_CHAIN
from tests.temporal.conformance import Answer, Case

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return data


CHAIN = Case(
    "chain-with-templates",
    {
        "name": "chain",
        "inputs": {"topic": {"default": "tides"}, "n": {"type": "integer", "default": 3}},
        "steps": [
            {"id": "up", "args": "${inputs.topic | upper}"},
            {"id": "shape", "value": {"word": "${up.output}", "len": "${up.output | length}"}},
            {
                "id": "say",
                "argv": ["sh", "-c", 'echo "$WORD x$N"'],
                "env": {"WORD": "${shape.output.word}", "N": "${inputs.n}"},
            },
            {"id": "end", "args": "${say.output | trim} (${shape.output.len} letters)"},
        ],
    },
    inputs={"topic": "moon"},
)

FAN = Case(
    "parallel-fan-out-fan-in",
    {
        "name": "fan",
        "steps": [
            {"id": "root", "value": [1, 2, 3]},
            {"id": "a", "args": "a${root.output[0]}"},
            {"id": "b", "argv": ["echo", "b${root.output[1]}"]},
            {"id": "c", "op": "json", "value": {"zed": "${root.output[2]}", "c": 0}},
            # the keys in the order the step wrote them (not sorted, on either backend)
            {"id": "join", "args": "${a.output}+${b.output | trim}+${c.output | join(',')}"},
        ],
    },
)

FLOW = Case(
    "conditional-flow",
    {
        "name": "flow",
        "inputs": {"failed": {"type": "integer", "default": 2}},
        "steps": [
            {"id": "tests", "op": "json", "value": {"failed": "${inputs.failed}"}},
            {"id": "alarm", "when": "${tests.output.failed > 5}", "args": "many"},
            {"id": "note", "when": "${tests.output.failed > 0}", "args": "some"},
            {
                "id": "check",
                "if": "${tests.output.failed > 0}",
                "then": [
                    {"id": "fix", "args": "fix ${tests.output.failed}"},
                    {"id": "verify", "args": "verified: ${fix.output}"},
                ],
                "else": [{"id": "ship", "args": "shipped"}],
            },
            {
                "id": "verdict",
                "depends_on": ["alarm", "note", "check"],
                "trigger": "all_done",
                "args": "${note.output if note.status == 'succeeded' else alarm.output}"
                " / ${check.output}",
            },
        ],
    },
)

FOREACH = Case(
    "foreach-with-max-concurrency",
    {
        "name": "each",
        "steps": [
            {"id": "names", "value": ["ada", "bob", "cy", "dee"]},
            {
                "id": "greet",
                "foreach": {"items": "${names.output}", "max_concurrency": 2},
                "argv": ["sh", "-c", 'echo "hi $WHO #$I"'],
                "env": {"WHO": "${item}", "I": "${item_index}"},
            },
            {"id": "all", "args": "${greet.output | map('trim') | join(', ')}"},
        ],
    },
)

LOOP = Case(
    "loop-until",
    {
        "name": "loop",
        "steps": [
            {
                "id": "refine",
                "loop": {
                    "max_iterations": 5,
                    "until": "${critique.output.ok}",
                    "steps": [
                        {"id": "draft", "args": "v${loop.iteration}"},
                        {"id": "critique", "value": {"ok": "${loop.iteration >= 3}"}},
                    ],
                },
            },
            {"id": "final", "args": "last: ${refine.output.draft}"},
        ],
    },
)

_FLAKY = "if [ -e flaky.mark ]; then echo recovered; else : > flaky.mark; exit 3; fi"
POLICIES = Case(
    "failure-policies-and-retries",
    {
        "name": "policies",
        "steps": [
            {
                "id": "flaky",
                "argv": ["sh", "-c", _FLAKY],
                "retry": {"attempts": 3, "backoff_s": 0},
            },
            {
                "id": "broken",
                "argv": ["sh", "-c", "echo nope >&2; exit 4"],
                "retry": {"attempts": 2, "backoff_s": 0},
                "on_failure": "continue",
            },
            {"id": "after_broken", "depends_on": ["broken"], "args": "never"},
            {
                "id": "primary",
                "op": "parse_json",
                "args": "{not json",
                "on_failure": "fallback",
                "fallback": "backup",
            },
            {"id": "backup", "args": "from the backup"},
            {
                "id": "shaky",
                "argv": ["sh", "-c", "exit 5"],
                "on_failure": "degrade",
                "default": {"n": 0},
            },
            {"id": "use", "args": "${flaky.output | trim} ${shaky.output.n} ${primary.output}"},
        ],
    },
)

FAIL = Case(
    "failure-policy-fail",
    {
        "name": "fails",
        "steps": [
            {"id": "ok", "args": "fine"},
            {"id": "bad", "argv": ["sh", "-c", "echo broken >&2; exit 2"]},
            {"id": "after", "depends_on": ["bad"], "args": "never"},
        ],
    },
)

TIMEOUT = Case(
    "a-step-over-its-timeout-is-retried-then-fails",
    {
        "name": "slow",
        "steps": [
            {
                "id": "slow",
                "argv": ["sleep", "5"],
                "timeout": 0.5,
                "retry": {"attempts": 2, "backoff_s": 0},
                "on_failure": "continue",
            },
            {"id": "after", "args": "went on"},
        ],
    },
)

_SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}},
    "required": ["colour"],
}
CLIENT = Case(
    "client-steps",
    {
        "name": "client",
        "steps": [
            {
                "id": "ask",
                "run": "client",
                "prompt": "Name a colour",
                "output": "json",
                "json_schema": _SCHEMA,
            },
            {"id": "other", "run": "client", "prompt": "Say no", "on_failure": "continue"},
            {"id": "end", "args": "${ask.output.colour}!"},
        ],
    },
    answers={
        "ask": (Answer({"shade": 3}, rejected=True), Answer({"colour": "teal"})),
        "other": (Answer(error="I cannot"),),
    },
)

GATES = Case(
    "approval-gates",
    {
        "name": "gates",
        "steps": [
            {"id": "plan", "value": {"count": 3}},
            {"id": "go", "approve": "Apply ${plan.output.count} edits?"},
            {"id": "apply", "depends_on": ["go"], "args": "applied"},
            {"id": "stop", "depends_on": ["apply"], "approve": "Also delete?", "on_reject": "keep"},
            {"id": "delete", "depends_on": ["stop"], "args": "deleted"},
            {"id": "keep", "args": "kept (${stop.error})"},
        ],
    },
    answers={
        "go": (Answer("yes", rejected=True), Answer({"approve": True, "note": "fine"})),
        "stop": (Answer({"approve": False, "note": "not now"}),),
    },
)

GATE_REJECTED_FAILS = Case(
    "approval-gate-rejected-fails-the-run",
    {
        "name": "gate-fails",
        "steps": [
            {"id": "go", "approve": "Proceed?"},
            {"id": "work", "depends_on": ["go"], "args": "worked"},
        ],
    },
    answers={"go": (Answer(error="the user said no"),)},
)

CANCEL = Case(
    "cancel-while-a-step-runs",
    {
        "name": "cancel",
        "steps": [
            {"id": "first", "args": "done"},
            {"id": "slow", "depends_on": ["first"], "argv": ["sleep", "30"]},
            {"id": "after", "depends_on": ["slow"], "args": "never"},
        ],
    },
    cancel_when_running="slow",
)

CHILD = Case(
    "workflow-child-step",
    {
        "name": "parent",
        "steps": [
            {"id": "who", "args": "ada"},
            {
                "id": "call",
                "workflow": {
                    "name": "shout",
                    "inputs": {"name": {"required": True}},
                    "steps": [
                        {"id": "up", "args": "${inputs.name | upper}"},
                        {"id": "twice", "argv": ["echo", "${up.output}${up.output}"]},
                    ],
                },
                "inputs": {"name": "${who.output}"},
            },
            {"id": "end", "args": "${call.output.twice | trim}!"},
        ],
    },
)

PROMPT = Case(
    "prompt-step-on-the-fake-api",
    {
        "name": "prompt",
        "steps": [
            {"id": "topic", "args": "tides"},
            {"id": "ask", "prompt": "One line on ${topic.output}", "thinking": "instant"},
            {"id": "end", "args": "${ask.output | length > 0}"},
        ],
    },
)

SEED = Case("seed-chain-on-the-fake-api", SEED_CHAIN)

TRIAGE = Case(
    "example-triage",
    example("triage.yaml"),
    inputs={"root": str(ROOT / "engine" / "temporal"), "max_lines": 100},
)

GATED_CLEANUP = Case(
    "example-gated-cleanup",
    example("gated-cleanup.yaml"),
    answers={"confirm": (Answer({"approve": True}),)},
    files={"a.tmp": "a", "b.tmp": "b", "keep.txt": "k"},
)

DRAFT_LOOP = Case("example-draft-loop-on-the-fake-api", example("draft-loop.yaml"))

CASES = [
    CHAIN,
    FAN,
    FLOW,
    FOREACH,
    LOOP,
    POLICIES,
    FAIL,
    TIMEOUT,
    CLIENT,
    GATES,
    GATE_REJECTED_FAILS,
    CANCEL,
    CHILD,
    PROMPT,
    SEED,
    TRIAGE,
    GATED_CLEANUP,
    DRAFT_LOOP,
]
