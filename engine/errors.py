"""The engine's exception family: one class per condition, messages built from fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tutti_mcp.memory.run_store import RunNotFound


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


# One "run not found" for the whole server: the stores raise it, and memory may not import
# the engine, so it lives beside the store interface. Not a TuttiError: handlers that turn
# TuttiErrors into messages catch it too.
RunNotFoundError = RunNotFound


class RunStateError(TuttiError):
    """An operation does not fit the run's current status (resume a finished run, ...)."""


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
