"""The parts of the spec format that stand alone: the closed sets of values its fields take
(modes, executors, policies, builtin operations) and its small sections (retry policy,
defaults, optimisation switches, budget). engine.spec re-exports them beside the models
that use them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    GATE = "gate"  # an approval gate (`approve:`): a person answers yes or no


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


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(SpecModel):
    attempts: int = Field(1, ge=1, le=20, description="total attempts, the first included")
    backoff_s: float = Field(1.0, ge=0, le=600, description="delay before the 2nd attempt")
    max_backoff_s: float = Field(60.0, ge=0, le=3600)
    jitter: bool = True

    def delay(self, failed_attempt: int, rand: float) -> float:
        """Exponential backoff with full jitter; `rand` in [0, 1)."""
        base: float = min(self.max_backoff_s, self.backoff_s * 2.0 ** (failed_attempt - 1))
        return base * rand if self.jitter else base


class Defaults(SpecModel):
    model: str | None = None
    thinking: ThinkingMode | None = None
    timeout: float = Field(300.0, gt=0, le=86_400)
    retry: RetryPolicy = RetryPolicy()
    model_executor: ExecutorKind | None = Field(
        None, description="where model steps run when a step does not say: prompt, client, sampling"
    )

    @field_validator("model_executor")
    @classmethod
    def _model_executor(cls, v: ExecutorKind | None) -> ExecutorKind | None:
        if v is not None and v not in MODEL_KINDS:
            raise ValueError("model steps run on prompt, client or sampling")
        return v


class Optimization(SpecModel):
    """The seed's optimisation switches; all on by default and honoured where they apply."""

    parallel_where_possible: bool = True
    adaptive_thinking: bool = True
    state_persistence: bool = True


class Budget(SpecModel):
    max_cost_usd: float | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    # With max_cost_usd, a step on a model without a known price is refused at plan time
    # (its cost could not count against the budget) unless this says to run it anyway.
    allow_unpriced: bool = False
