"""The engine's exception family: one class per condition, messages built from fields.

Every class here derives from `TuttiError`, the root of every error tutti raises on
purpose; it is defined in memory/errors.py (memory may not import the engine) and
re-exported here, so `from tutti_mcp.engine.errors import TuttiError` is the usual import."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tutti_mcp.memory.errors import TuttiError as TuttiError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (a dotted path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(TuttiError):
    """A workflow spec is invalid. Raised before anything runs; lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"workflow spec is invalid ({len(problems)} {noun}):\n{lines}")


class TemplateError(TuttiError):
    """A template failed to render at run time (bad path into an output, forbidden access)."""


class ConfigurationError(TuttiError):
    """Something the run needs is not configured (an API key, a shell allow-list)."""


class RunStateError(TuttiError):
    """An operation does not fit the run's current status (resume a finished run, ...)."""


# -- caller mistakes: a tool was called with arguments that cannot be carried out ---------
class ClientCannotSample(TuttiError):
    """A spec has steps that run on `sampling`, but the connected client does not offer it."""

    def __init__(self, steps: list[str], why: str) -> None:
        self.steps = steps
        super().__init__(f"steps {', '.join(steps)} run on `sampling`, but {why}")


class StepResultConflict(TuttiError):
    """A client step was reported with both an output and an error."""

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id
        super().__init__(
            "give either output (the step's result) or error (why it failed), not both"
        )


class StepResultMissing(TuttiError):
    """A client step was reported with neither an output nor an error."""

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id
        super().__init__(
            f"give output=... with the result of step {step_id!r} (or error=... if it could not be done)"
        )


class UnknownStep(TuttiError):
    """A step id that the run does not have (fork from it, complete it)."""

    def __init__(self, run_id: str, step_id: str, known: list[str]) -> None:
        self.run_id, self.step_id = run_id, step_id
        super().__init__(f"run {run_id} has no step {step_id!r} (its steps: {', '.join(known)})")


class StepNotWaiting(TuttiError):
    """A result was reported for a step that is not waiting for the client."""

    def __init__(self, run_id: str, step_id: str, status: str) -> None:
        self.run_id, self.step_id, self.status = run_id, step_id, status
        super().__init__(
            f"step {step_id!r} of run {run_id} is {status}, not waiting for the client; "
            f"call workflow_status('{run_id}') to see which steps wait"
        )


class StepRunsAChild(TuttiError):
    """A result was reported for a `workflow` step: its child run's steps take results."""

    def __init__(self, run_id: str, step_id: str, child_id: str) -> None:
        self.run_id, self.step_id, self.child_id = run_id, step_id, child_id
        super().__init__(
            f"step {step_id!r} of run {run_id} runs child run {child_id}: complete that run's "
            f"waiting steps (workflow_status('{child_id}') lists them), then resume {run_id}"
        )


class StepOutputRejected(TuttiError):
    """A client's output for a step does not have the shape the step declares."""

    def __init__(self, step_id: str, why: str) -> None:
        self.step_id = step_id
        super().__init__(f"step {step_id!r}: {why}")


class UnknownRunStatus(TuttiError):
    """A run listing was filtered by a status that does not exist."""

    def __init__(self, status: str, known: list[str]) -> None:
        self.status = status
        super().__init__(f"unknown status {status!r}; use one of: {', '.join(known)}")


class StepErrorKind(StrEnum):
    """Why a step's attempt failed. The values are stored with the step (`error_kind` in
    its detail) and shown to clients: never change one."""

    ERROR = "error"  # unspecified
    EXCEPTION = "exception"  # an executor raised something unexpected
    TIMEOUT = "timeout"
    CLIENT = "client"  # the client reported the step failed
    SAMPLING = "sampling"  # the client's sampling failed or is not offered
    PARSE = "parse"  # output: json, and the output is not JSON
    SCHEMA = "schema"  # the output does not match the step's json_schema
    POLICY = "policy"  # the shell policy refuses the program, variable or cwd
    NOT_FOUND = "not_found"  # the program does not exist or is not executable
    EXIT_CODE = "exit_code"
    OUTPUT_CAP = "output_cap"
    API = "api"  # the Anthropic API refused the call
    API_RESPONSE = "api_response"  # the Anthropic API answered something unusable
    CONNECTION = "connection"
    REFUSAL = "refusal"  # the model refused
    TRUNCATED = "truncated"  # the answer hit max_tokens
    TOOL_TURNS = "tool_turns"  # the memory tool loop ran out of turns
    REJECTED = "rejected"  # an approval gate was answered no, or not in time
    # a refusal raised while preparing the step: the class name, as stored before this enum
    TEMPLATE = "TemplateError"
    TEMPLATE_LIMIT = "TemplateLimitError"
    CONFIGURATION = "ConfigurationError"
    THINKING = "ThinkingError"

    @classmethod
    def of_refusal(cls, exc: TemplateError | ConfigurationError) -> StepErrorKind:
        """The kind named after `exc`'s class, or after its nearest base that has one."""
        names = {k.value for k in cls}
        return next(cls(c.__name__) for c in type(exc).__mro__ if c.__name__ in names)


class StepError(TuttiError):
    """A step's attempt failed. `retryable` says whether another attempt may succeed;
    `usage` is what the attempt consumed before it failed (tokens, `cost_usd`), which counts
    in the run's totals."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        kind: StepErrorKind = StepErrorKind.ERROR,
        usage: dict[str, Any] | None = None,
    ) -> None:
        self.retryable = retryable
        self.kind = kind
        self.usage = usage
        super().__init__(message)
