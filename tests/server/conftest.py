import pytest

from tests.server.mcp_support import MODES


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """The protocol generation: `legacy` (2025-11-25 handshake) or `auto` (2026-07-28)."""
    return str(request.param)
