"""The closed sets of values a spec's fields take (modes, executors, policies, builtin
operations); engine.spec re-exports them beside the models that use them."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    AUTO = "auto"
    CHAIN = "chain"
    FLOW = "flow"
    SWARM = "swarm"
    PIPELINE = "pipeline"


class ExecutorKind(StrEnum):
    BUILTIN = "builtin"
    SHELL = "shell"
    PROMPT = "prompt"
    CLIENT = "client"
    SAMPLING = "sampling"


MODEL_KINDS = frozenset({ExecutorKind.PROMPT, ExecutorKind.CLIENT, ExecutorKind.SAMPLING})


class ThinkingMode(StrEnum):
    INSTANT = "instant"
    STANDARD = "standard"
    EXTENDED = "extended"
    AUTO = "auto"


class FailurePolicy(StrEnum):
    FAIL = "fail"  # the run fails; no new steps start
    CONTINUE = "continue"  # the step is optional: dependents that need it are skipped
    FALLBACK = "fallback"  # run the step named in `fallback`; its output stands in
    DEGRADE = "degrade"  # use `default` as the output and go on; the run is marked partial


class TruncationPolicy(StrEnum):
    """What a model answer cut off at `max_tokens` does to its step."""

    FAIL = "fail"  # the step fails, saying so: a cut-off answer rarely serves what follows
    ACCEPT = "accept"  # the cut-off text is the output, recorded as truncated


class Trigger(StrEnum):
    ALL_SUCCEEDED = "all_succeeded"  # run only if every dependency produced an output
    ALL_DONE = "all_done"  # run once every dependency is finished, whatever its outcome


class BuiltinOp(StrEnum):
    TEMPLATE = "template"  # render `args` (a template) to text
    JSON = "json"  # evaluate `value` (JSON whose strings are templates) to a JSON value
    PASS = "pass"  # the output of the only dependency, or `value`
    MERGE = "merge"  # {dep_id: output} of all dependencies
    PARSE_JSON = "parse_json"  # parse rendered `args` as JSON
    WAIT = "wait"  # wait `value` seconds, then output `args` rendered (timers, pacing)
