"""The workflow tools, registered on an MCPServer: thin adapters that take the arguments,
call `tools.workflow`, and turn tutti's errors into ToolErrors that say what to do next
(`tools.errors`).

(No `from __future__ import annotations` here: the SDK reads these annotations at
registration, and the sampling resolvers are made in a factory.)"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp_types import (
    CallToolResult,
    CreateMessageResult,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field

from tutti_mcp.engine.executors.sampling import SamplingRequest
from tutti_mcp.engine.supervisor import ReportProgress
from tutti_mcp.tools import roots_mcp
from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.errors import tool_errors
from tutti_mcp.tools.results import (
    Cancelled,
    CheckpointList,
    PlanResult,
    Resumed,
    RunList,
    RunResult,
    RunState,
)
from tutti_mcp.tools.roots_mcp import RootUris
from tutti_mcp.tools.sampling import as_sample, client_can_sample

M = TypeVar("M", bound=BaseModel)
SpecArg = Annotated[
    dict[str, Any] | str,
    Field(description="workflow spec: object, JSON/YAML text, or file path"),
]
RunId = str
Inputs = Annotated[dict[str, Any] | None, Field(description="values for the spec's inputs")]
Wait = Annotated[
    float,
    Field(ge=0, le=wfl.MAX_WAIT_S, description="seconds to wait"),
]


def reply(model: M) -> M:
    """The tool result: the model as structured content, and as compact JSON text for
    clients that read only text (the SDK's default text is indented: more tokens)."""
    result = CallToolResult(
        content=[TextContent(type="text", text=model.model_dump_json())],
        structured_content=model.model_dump(mode="json"),
    )
    return cast(M, result)  # the SDK validates structured_content against M's schema


def state_of(ctx: Context[Any, Any]) -> wfl.ToolState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, wfl.ToolState)
    return state


def binder(
    state: wfl.ToolState, ctx: Context[Any, Any], task_id: str | None = None
) -> Callable[[str], None]:
    """Makes this call's client the one a run samples from and asks its gates' questions,
    naming the MCP task it follows the run by (`task_id`, else the task this call is
    answered with, if any) in those requests."""
    task = task_id or wfl.AS_TASK.get()

    def bind(run_id: str) -> None:
        state.broker.bind(run_id, ctx, task)
        if state.asker is not None:
            state.asker.bind(run_id, ctx, task)

    return bind


def progress_of(ctx: Context[Any, Any]) -> ReportProgress:
    async def report(done: int, total: int, message: str) -> None:
        await ctx.report_progress(done, total, message)

    return report


# -- sampling slots: each answers one parked request of the run per workflow_status call --
SLOTS = 4


async def _long_poll(run_id: str, wait_s: float, ctx: Context) -> float:
    """workflow_status's wait, done before the sampling slots are filled where the client
    samples over a connection without a back-channel (2026-07-28): a request parked during
    the wait then rides this very call's input round trip, rather than the next call's.
    Returns how long the tool body may still wait: all of wait_s when requests are parked
    (it waits again once they are answered), nothing when this wait ended otherwise."""
    if wait_s <= 0 or not client_can_sample(ctx) or ctx.session.can_send_request:
        return wait_s
    state = state_of(ctx)
    with tool_errors():
        await wfl.wait_for_caller(state, run_id, wait_s, progress_of(ctx))
    return wait_s if state.broker.pending(run_id) else 0.0


Polled = Annotated[float, Resolve(_long_poll)]


def _slot(i: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    def pending_request(run_id: str, ctx: Context, polled: Polled) -> SamplingRequest | None:
        if not client_can_sample(ctx):
            return None
        reqs = state_of(ctx).broker.pending(run_id)
        return reqs[i] if i < len(reqs) else None

    def ask(req: Annotated[SamplingRequest | None, Resolve(pending_request)]) -> Sample | None:
        return None if req is None else as_sample(req)

    return pending_request, ask


_SLOTS = [_slot(i) for i in range(SLOTS)]
Req = [Annotated[SamplingRequest | None, Resolve(p)] for p, _ in _SLOTS]
Reply = [Annotated[CreateMessageResult | None, Resolve(a)] for _, a in _SLOTS]


def register(server: MCPServer[Any]) -> None:
    roots_mcp.register(server)  # a client's roots/list_changed drops its kept roots
    read_only = ToolAnnotations(read_only_hint=True)

    @server.tool(annotations=read_only)
    async def workflow_plan(spec: SpecArg, ctx: Context, roots: RootUris) -> PlanResult:
        """Check a workflow spec without running it: mode and why, DAG as Mermaid, parallel
        groups, critical path, speedup, thinking per step, cost range. Spec: {name, inputs?,
        steps: [{id, prompt|command|argv|op, depends_on?, when?, run?, thinking?, output?}]};
        templates: ${inputs.x}, ${step_id.output}."""
        with tool_errors():
            return reply(await wfl.plan(state_of(ctx), spec, roots))

    @server.tool()
    async def workflow_start(
        spec: SpecArg,
        ctx: Context,
        roots: RootUris,
        inputs: Inputs = None,
        wait_s: Wait = 0,
    ) -> RunState:
        """Start a run: returns its run_id at once, or after up to wait_s. client_tasks are
        for you: do them, report with step_complete."""
        state = state_of(ctx)
        with tool_errors():
            out = await wfl.start(
                state,
                spec,
                inputs,
                wait_s,
                can_sample=client_can_sample(ctx),
                progress=progress_of(ctx),
                bind=binder(state, ctx),
                roots=roots,
            )
            return reply(out)

    @server.tool(annotations=read_only)
    async def workflow_status(
        run_id: RunId,
        ctx: Context,
        r0: Req[0],  # type: ignore[valid-type]
        s0: Reply[0],  # type: ignore[valid-type]
        r1: Req[1],  # type: ignore[valid-type]
        s1: Reply[1],  # type: ignore[valid-type]
        r2: Req[2],  # type: ignore[valid-type]
        s2: Reply[2],  # type: ignore[valid-type]
        r3: Req[3],  # type: ignore[valid-type]
        s3: Reply[3],  # type: ignore[valid-type]
        polled: Polled,
        wait_s: Wait = 0,
    ) -> RunState:
        """A run's progress: step statuses, output previews, client_tasks ready for you.
        With wait_s, waits until a step finishes or needs you."""
        state = state_of(ctx)
        sampled: list[str] = []
        for req, answer in ((r0, s0), (r1, s1), (r2, s2), (r3, s3)):
            if req is not None and answer is not None:
                state.broker.answer(run_id, req.step_id, answer)
                sampled.append(req.step_id)
        with tool_errors():
            if state.supervisor.live(run_id):
                # its sampling steps and gates ask this client from now on; one that cannot
                # sample fails them at once (tools/sampling.py), not at their timeout
                binder(state, ctx)(run_id)
            run = await wfl.status(
                state,
                run_id,
                polled,
                progress=progress_of(ctx),
                sampled=sampled,
                sampler=client_can_sample(ctx),
            )
            return reply(run)

    @server.tool(annotations=read_only)
    async def workflow_result(run_id: RunId, ctx: Context) -> RunResult:
        """A run's outputs, per-step results, metrics (speedup, critical path, tokens, cost);
        for an unfinished run also the error analysis and recovery plan."""
        with tool_errors():
            return reply(await wfl.result(state_of(ctx), run_id))

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
    async def workflow_cancel(run_id: RunId, ctx: Context) -> Cancelled:
        """Cancel a run; finished steps keep their results."""
        with tool_errors():
            return reply(await wfl.cancel(state_of(ctx), run_id))

    @server.tool()
    async def workflow_resume(
        run_id: RunId,
        ctx: Context,
        from_step: Annotated[
            str | None, Field(description="fork: redo this step and all after it")
        ] = None,
        inputs: Annotated[
            dict[str, Any] | None, Field(description="fork with these inputs changed")
        ] = None,
        wait_s: Wait = 0,
    ) -> Resumed:
        """Continue a stopped run, skipping finished steps. With from_step or inputs, fork a
        new run keeping the checkpoints the change does not affect."""
        state = state_of(ctx)
        with tool_errors():
            out = await wfl.resume(
                state,
                run_id,
                from_step,
                inputs,
                wait_s,
                progress=progress_of(ctx),
                bind=binder(state, ctx),
            )
            return reply(out)

    @server.tool(annotations=read_only)
    async def workflow_list(
        ctx: Context,
        status: Annotated[
            str | None,
            Field(description="running|waiting|succeeded|failed|cancelled|interrupted"),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> RunList:
        """Recent runs, newest first."""
        with tool_errors():
            return reply(await wfl.list_runs(state_of(ctx), status, limit))

    @server.tool(annotations=read_only)
    async def checkpoint_list(run_id: RunId, ctx: Context) -> CheckpointList:
        """A run's committed steps, in order: what resume keeps. workflow_resume(run_id,
        from_step=S) forks a run that keeps those before S and redoes S onwards."""
        with tool_errors():
            return reply(await wfl.checkpoints(state_of(ctx), run_id))

    @server.tool()
    async def step_complete(
        run_id: RunId,
        step_id: str,
        ctx: Context,
        output: Annotated[Any, Field(description="the step's result (text or JSON)")] = None,
        error: Annotated[str | None, Field(description="why the step could not be done")] = None,
    ) -> RunState:
        """Report the result of a client task; the run moves on and the answer lists any new
        client_tasks."""
        state = state_of(ctx)
        with tool_errors():
            out = await wfl.complete(
                state,
                run_id,
                step_id,
                output,
                error,
                progress=progress_of(ctx),
                bind=binder(state, ctx),
            )
            return reply(out)


__all__ = ["register"]
