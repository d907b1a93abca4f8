"""What a step's activity carries: only the results the step reads. A foreach's instances
are added to the run as it goes; each instance's call once carried every earlier
instance's output, so a fan-out's history grew with the square of its width (a 1,000-item
foreach failed with "Workflow history size exceeds limit")."""

from __future__ import annotations

import anyio
import pytest

from tests.temporal.conftest import Backend

pytestmark = pytest.mark.anyio


async def test_a_foreach_instances_call_does_not_carry_the_other_instances_outputs(
    backend: Backend,
) -> None:
    width = 40
    spec = {
        "name": "fan",
        "steps": [
            {"id": "items", "value": list(range(width))},
            {"id": "each", "foreach": "${items.output}", "args": "${'x' * 200} ${item}"},
        ],
    }
    with anyio.fail_after(60):
        run_id = await backend.start(spec)
        await backend.runs.handle(run_id).result()
        history = await backend.runs.handle(run_id).fetch_history()
    sizes = [
        sum(len(p.data) for p in e.activity_task_scheduled_event_attributes.input.payloads)
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert len(sizes) == width + 1  # `items`, then each instance
    # every instance's call is about as large as the first one's: ~200 bytes of output
    # from each of 39 others would add ~8 KB to the last
    assert max(sizes) - min(sizes[1:]) < 1000, sizes
    # the activity times its step: no timer per step in the workflow (two more events
    # each); one timer is the client-step watcher's day-long wait
    timers = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    assert len(timers) <= 1, timers
