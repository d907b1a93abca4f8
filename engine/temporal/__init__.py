"""The Temporal backend (TUTTI_BACKEND=temporal): tutti's own runner, scheduling core and
all, inside one generic Temporal workflow; every step an activity on `tutti worker`
processes; client steps and approval gates answered by workflow updates; cancel is
Temporal's cancellation; the run's record read by a query.

Only this package imports `temporalio` (the optional `temporal` extra)."""

from __future__ import annotations

from tutti_mcp.engine.errors import ConfigurationError


def require_temporalio() -> None:
    """Fail with what to install when the `temporal` extra is missing."""
    try:
        import temporalio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "TUTTI_BACKEND=temporal needs the Temporal SDK: install the `temporal` extra "
            "(pip install 'tutti-mcp[temporal]' or uv add 'tutti-mcp[temporal]')"
        ) from None
