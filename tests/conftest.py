import pytest

from tests.fake_anthropic import fake_anthropic as fake_anthropic


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
