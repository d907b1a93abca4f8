"""The engine's exception family: one class per condition, messages built from fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TuttiError(Exception):
    """Base class of every error tutti raises on purpose."""


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


class RunNotFoundError(TuttiError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}; `tutti runs` lists the known runs")


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


class UnknownRunStatus(TuttiError):
    """A run listing was filtered by a status that does not exist."""

    def __init__(self, status: str, known: list[str]) -> None:
        self.status = status
        super().__init__(f"unknown status {status!r}; use one of: {', '.join(known)}")


class StepError(TuttiError):
    """A step's attempt failed. `retryable` says whether another attempt may succeed;
    `usage` is what the attempt consumed before it failed (tokens, `cost_usd`), which counts
    in the run's totals."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        kind: str = "error",
        usage: dict[str, Any] | None = None,
    ) -> None:
        self.retryable = retryable
        self.kind = kind
        self.usage = usage
        super().__init__(message)
