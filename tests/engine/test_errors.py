"""Why a step failed is a StepErrorKind: its values are stored with steps and shown to
clients, so they stay the strings they were."""

from __future__ import annotations

from tutti_mcp.engine.errors import (
    ConfigurationError,
    StepError,
    StepErrorKind,
    TemplateError,
)
from tutti_mcp.engine.template_limits import TemplateLimitError
from tutti_mcp.engine.thinking import ThinkingError


def test_the_stored_kinds_keep_their_strings() -> None:
    assert [k.value for k in StepErrorKind] == [
        "error",
        "exception",
        "timeout",
        "client",
        "sampling",
        "parse",
        "schema",
        "policy",
        "not_found",
        "exit_code",
        "output_cap",
        "api",
        "api_response",
        "connection",
        "refusal",
        "truncated",
        "tool_turns",
        "rejected",
        "TemplateError",
        "TemplateLimitError",
        "ConfigurationError",
        "ThinkingError",
    ]


def test_a_step_error_without_a_kind_is_of_the_unspecified_kind() -> None:
    assert StepError("broke").kind is StepErrorKind.ERROR


def test_a_refusal_is_named_after_its_class_or_its_nearest_named_base() -> None:
    class LateConfigurationError(ConfigurationError):
        pass

    got = {
        type(exc).__name__: StepErrorKind.of_refusal(exc)
        for exc in (
            TemplateError("bad path"),
            TemplateLimitError("too big"),
            ConfigurationError("no key"),
            ThinkingError("no thinking"),
            LateConfigurationError("later"),
        )
    }
    assert got == {
        "TemplateError": StepErrorKind.TEMPLATE,
        "TemplateLimitError": StepErrorKind.TEMPLATE_LIMIT,
        "ConfigurationError": StepErrorKind.CONFIGURATION,
        "ThinkingError": StepErrorKind.THINKING,
        "LateConfigurationError": StepErrorKind.CONFIGURATION,
    }
