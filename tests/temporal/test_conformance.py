"""The same specs on the embedded backend and on Temporal end alike: the run's status, and
each step's status, output, attempts, error and skip reason or failure detail."""

from __future__ import annotations

import pytest

from tests.temporal.cases import CASES
from tests.temporal.conformance import Case, normalized, run_embedded, run_temporal
from tests.temporal.conftest import Backend

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_a_spec_ends_on_temporal_exactly_as_on_the_embedded_backend(
    case: Case, backend: Backend
) -> None:
    embedded = await run_embedded(case, backend.workspace.parent / "embedded", backend.executors)
    on_temporal = await run_temporal(case, backend)
    assert normalized(on_temporal) == normalized(embedded)
