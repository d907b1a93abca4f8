"""`run: sampling` steps: run on the calling client's own model through MCP sampling.

With the handshake protocol (`legacy`) the server asks the client over the back-channel
while the run goes on; with the 2026-07-28 protocol (`auto`) there is no back-channel, so
each workflow_status call carries the run's parked requests to the client."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import anyio
import pytest
from mcp.client.session import ClientRequestContext
from mcp_types import (
    ClientCapabilities,
    CreateMessageRequestParams,
    CreateMessageResult,
    ImageContent,
    SamplingCapability,
    TextContent,
)

from tests.server.mcp_support import (
    MODES,
    call,
    connect,
    fail,
    until_settled,
)
from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.executors.sampling import SamplingRequest
from tutti_mcp.engine.supervisor import RunSupervisor
from tutti_mcp.memory.runs.records import RunRecord, RunStatus
from tutti_mcp.tools.next_hint import next_step
from tutti_mcp.tools.sampling import NO_SAMPLING, SamplingBroker

pytestmark = pytest.mark.anyio

SPEC: dict[str, Any] = {
    "name": "sampled",
    "inputs": {"topic": "owls"},
    "steps": [
        {"id": "a", "op": "template", "args": "night"},
        {
            "id": "deep",
            "depends_on": ["a"],
            "prompt": "Think hard about ${inputs.topic} at ${a.output}.",
            "run": "sampling",
            "thinking": "extended",
            "system": "You are a careful naturalist.",
            "max_tokens": 1234,
        },
        {
            "id": "quick",
            "depends_on": ["a"],
            "prompt": "One word for ${inputs.topic}.",
            "run": "sampling",
            "thinking": "instant",
        },
        {"id": "both", "op": "template", "args": "${deep.output} / ${quick.output}"},
    ],
}
EXPECTED = {
    "a": "night",
    "deep": "model says: Think hard about owls at night.",
    "quick": "model says: One word for owls.",
    "both": "model says: Think hard about owls at night. / model says: One word for owls.",
}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Model:
    """The client's model: records each sampling request and answers with its prompt."""

    def __init__(self, content: str = "text") -> None:
        self.content = content
        self.requests: list[CreateMessageRequestParams] = []
        self.during_status: list[bool] = []  # whether a workflow_status call was in flight
        self.in_status = False
        self.asked = anyio.Event()

    async def __call__(
        self, context: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult:
        self.requests.append(params)
        self.during_status.append(self.in_status)
        self.asked.set()
        if self.content == "image":
            image = ImageContent(type="image", data="aGk=", mime_type="image/png")
            return CreateMessageResult(role="assistant", content=image, model="client-model")
        content = params.messages[0].content
        assert isinstance(content, TextContent)
        text = TextContent(type="text", text=f"model says: {content.text}")
        return CreateMessageResult(role="assistant", content=text, model="client-model")

    def by_step(self) -> dict[str, CreateMessageRequestParams]:
        return {str((p.metadata or {})["tutti_step"]).split(":")[1]: p for p in self.requests}

    async def status(self, client: Any, run_id: str) -> dict[str, Any]:
        """Long-poll until the run stops running, noting that these calls are in flight."""
        self.in_status = True
        try:
            return await until_settled(client, run_id)
        finally:
            self.in_status = False


async def test_legacy_answers_through_the_back_channel_while_the_run_goes_on() -> None:
    model = Model()
    with anyio.fail_after(20):
        async with connect("legacy", sampling_callback=model) as c:
            run = await call(c, "workflow_start", spec=SPEC)
            # no tool call is in flight: the server asks the client on its own
            with anyio.fail_after(10):
                await model.asked.wait()
            final = await model.status(c, run["run_id"])
            result = await call(c, "workflow_result", run_id=run["run_id"])
    assert final["status"] == "succeeded", final
    assert result["outputs"] == EXPECTED
    assert set(model.by_step()) == {"deep", "quick"}
    assert len(model.requests) == 2  # each step asked once
    usage = result["steps"]["deep"]["usage"]
    assert usage["sampled_by_client"] is True and usage["model"] == "client-model"


async def test_auto_answers_during_status_calls() -> None:
    model = Model()
    with anyio.fail_after(20):
        async with connect("auto", sampling_callback=model) as c:
            run = await call(c, "workflow_start", spec=SPEC)
            final = await model.status(c, run["run_id"])
            result = await call(c, "workflow_result", run_id=run["run_id"])
    assert final["status"] == "succeeded", final
    assert result["outputs"] == EXPECTED
    assert set(model.by_step()) == {"deep", "quick"}
    assert len(model.requests) == 2  # each step asked once
    # no back-channel: every request rode a workflow_status call
    assert model.during_status == [True, True]


async def test_sampling_request_carries_prompt_system_tokens_and_preferences(mode: str) -> None:
    model = Model()
    with anyio.fail_after(20):
        async with connect(mode, sampling_callback=model) as c:
            run = await call(c, "workflow_start", spec=SPEC, wait_s=10)
            if run["status"] != "succeeded":
                run = await model.status(c, run["run_id"])
    assert run["status"] == "succeeded", run
    asked = model.by_step()
    deep, quick = asked["deep"], asked["quick"]
    for params in (deep, quick):
        assert len(params.messages) == 1 and params.messages[0].role == "user"
    assert deep.messages[0].content == TextContent(
        type="text", text="Think hard about owls at night."
    )  # rendered: inputs and upstream outputs filled in
    assert quick.messages[0].content == TextContent(type="text", text="One word for owls.")
    assert deep.system_prompt is not None and quick.system_prompt is not None
    assert deep.system_prompt.endswith("You are a careful naturalist.")
    assert "naturalist" not in quick.system_prompt
    assert deep.max_tokens == 1234
    assert quick.max_tokens > 0
    assert (deep.metadata or {})["thinking"] == "extended"
    assert (quick.metadata or {})["thinking"] == "instant"
    dp, qp = deep.model_preferences, quick.model_preferences
    assert dp is not None and qp is not None
    assert dp.intelligence_priority is not None and qp.intelligence_priority is not None
    assert dp.intelligence_priority > qp.intelligence_priority
    assert dp.speed_priority is not None and qp.speed_priority is not None
    assert dp.speed_priority < qp.speed_priority
    for prefs in (dp, qp):
        for p in (prefs.intelligence_priority, prefs.speed_priority, prefs.cost_priority):
            assert p is not None and 0 <= p <= 1


async def test_client_without_sampling_is_told_the_alternatives(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            text = await fail(c, "workflow_start", spec=SPEC, wait_s=5)
            listed = await call(c, "workflow_list")
    assert "deep" in text and "quick" in text
    assert "sampling" in text
    assert "run: client" in text and "step_complete" in text
    assert "ANTHROPIC_API_KEY" in text
    assert listed["runs"] == []  # refused before anything ran


async def test_non_text_reply_fails_the_step(mode: str) -> None:
    model = Model(content="image")
    spec = {
        "name": "picture",
        "steps": [{"id": "pic", "prompt": "Draw an owl.", "run": "sampling"}],
    }
    with anyio.fail_after(20):
        async with connect(mode, sampling_callback=model) as c:
            run = await call(c, "workflow_start", spec=spec, wait_s=10)
            if run["status"] in ("pending", "running"):
                run = await model.status(c, run["run_id"])
            result = await call(c, "workflow_result", run_id=run["run_id"])
    assert run["status"] == "failed"
    error = result["steps"]["pic"]["error"]
    assert "image" in error and "needs text" in error
    assert result["recovery"]["failures"]["pic"]["kind"] == "sampling"
    assert len(model.requests) == 1  # not asked again


async def test_auto_status_that_answered_with_non_text_does_not_say_the_step_still_waits() -> None:
    """The workflow_status call that carried the refused reply must not report the step as
    still waiting for the client's model."""
    model = Model(content="image")
    spec = {
        "name": "picture",
        "steps": [{"id": "pic", "prompt": "Draw an owl.", "run": "sampling"}],
    }
    with anyio.fail_after(20):
        async with connect("auto", sampling_callback=model) as c:
            run = await call(c, "workflow_start", spec=spec)
            model.in_status = True
            answer = await call(c, "workflow_status", run_id=run["run_id"], wait_s=10)
            for _ in range(5):  # the first status calls may come before the step asks
                if model.requests:
                    break
                answer = await call(c, "workflow_status", run_id=run["run_id"], wait_s=10)
    assert len(model.requests) == 1
    assert "Answered pic" in answer["next"]
    assert "wait for your model" not in answer["next"], answer["next"]


async def test_a_start_waiting_on_the_run_returns_as_soon_as_a_request_is_parked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over the 2026-07-28 protocol a request waits for the next workflow_status. A
    workflow_start already waiting must return when the request is parked: no step event
    comes until it is answered, so the park itself must wake the waiter."""
    gate = anyio.Event()
    park = SamplingBroker.__call__

    async def park_after_the_gate(self: SamplingBroker, request: Any) -> Any:
        await gate.wait()
        return await park(self, request)

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        if message and message.startswith("a "):
            gate.set()  # the waiter has seen `a` finish; only now is pic's request parked

    monkeypatch.setattr(SamplingBroker, "__call__", park_after_the_gate)
    spec = {
        "name": "owl",
        "steps": [
            {"id": "a", "op": "template", "args": "an owl"},
            {"id": "pic", "prompt": "Draw ${a.output}.", "run": "sampling", "depends_on": ["a"]},
        ],
    }

    async def open_the_gate_once_the_waiter_waits() -> None:
        # `a` may have finished before the waiter started waiting (its commit is quick):
        # then no progress comes, and the gate opens once every task is blocked
        await anyio.wait_all_tasks_blocked()
        gate.set()

    async with connect("auto", sampling_callback=Model()) as c:
        with anyio.fail_after(10):  # without the wake-up it waits its whole wait_s (30 s)
            async with anyio.create_task_group() as tg:
                tg.start_soon(open_the_gate_once_the_waiter_waits)
                run = await call(c, "workflow_start", progress, spec=spec, wait_s=30)
    assert run["steps"] == {"a": "succeeded", "pic": "running"}
    assert "wait for your model" in run["next"]


async def test_auto_a_status_call_already_waiting_answers_a_request_parked_during_its_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over 2026-07-28 a workflow_status call long-polling when a step parks its request
    takes it in the same call (its input round trip), rather than returning so that the
    next call takes it."""
    gate = anyio.Event()
    park, wait = SamplingBroker.__call__, RunSupervisor.wait

    async def park_after_the_gate(self: SamplingBroker, request: Any) -> Any:
        await gate.wait()
        return await park(self, request)

    async def open_the_gate_on_a_wait(self: RunSupervisor, *args: Any, **kw: Any) -> Any:
        if args[2] > 0:  # a caller waits on the run: only now may pic park its request
            gate.set()
        return await wait(self, *args, **kw)

    monkeypatch.setattr(SamplingBroker, "__call__", park_after_the_gate)
    monkeypatch.setattr(RunSupervisor, "wait", open_the_gate_on_a_wait)
    spec = {
        "name": "owl",
        "steps": [
            {"id": "a", "op": "template", "args": "an owl"},
            {"id": "pic", "prompt": "Draw ${a.output}.", "run": "sampling", "depends_on": ["a"]},
        ],
    }
    model = Model()
    with anyio.fail_after(20):
        async with connect("auto", sampling_callback=model) as c:
            run = await call(c, "workflow_start", spec=spec)
            model.in_status = True
            answer = await call(c, "workflow_status", run_id=run["run_id"], wait_s=30)
    assert len(model.requests) == 1 and model.during_status == [True]
    assert answer["next"].startswith("Answered pic with your model."), answer["next"]
    assert answer["outputs"]["pic"] == "model says: Draw an owl.", answer


async def test_a_client_without_sampling_connected_to_a_run_fails_its_parked_request_at_once() -> (
    None
):
    """The broker, as a status call from a client without sampling leaves it: the parked
    request fails now, saying why, instead of waiting out its step's timeout."""
    sampler = cast(
        Any,
        SimpleNamespace(
            client_capabilities=ClientCapabilities(sampling=SamplingCapability()),
            session=SimpleNamespace(can_send_request=False),  # 2026-07-28: no back-channel
        ),
    )
    other = cast(Any, SimpleNamespace(client_capabilities=ClientCapabilities(), session=None))
    broker = SamplingBroker()
    broker.bind("r1", sampler)
    request = SamplingRequest("r1", "pic", "", "Draw.", 100, "instant", 0.5, 0.5, 0.5, None, 60.0)
    failure: list[StepError] = []

    async def sample() -> None:
        with pytest.raises(StepError) as info:
            await broker(request)
        failure.append(info.value)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            await anyio.wait_all_tasks_blocked()
            assert broker.pending("r1") == [request]
            broker.bind("r1", other)
    assert str(failure[0]) == NO_SAMPLING and broker.pending("r1") == []
    with pytest.raises(StepError, match="does not offer MCP sampling"):
        await broker(request)  # and the next request fails before it is parked


def test_the_next_hint_tells_a_client_without_sampling_what_to_do_instead() -> None:
    run = RunRecord("r1", "owl", RunStatus.RUNNING, {}, {}, 0.0)
    hint = next_step(run, [], 1, None, sampler=False)
    assert hint.startswith(
        "1 step(s) ask for a model through MCP sampling, and this client declared no "
        "sampling capability, so they fail now"
    )
    assert "run: client" in hint and "workflow_resume('r1')" in hint
    assert "call workflow_status('r1') to answer them" in next_step(run, [], 1, None)
