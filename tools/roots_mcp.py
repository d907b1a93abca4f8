"""The client's roots over MCP (`roots/list`), which choose a run's workspace
(tools/workspace.py): a tool parameter annotated `RootUris` receives them.

They are asked where the client offers roots and the workspace is not fixed. A client
that can announce changes (`roots.listChanged` on a protocol that has
`notifications/roots/list_changed`: up to 2025-11-25) is asked once per connection: its
answer is kept in the connection's state until it announces a change, for at most
ROOTS_TTL_S, and dropped when the connection ends. Any other client is asked every time:
nothing would tell the server its roots changed. That includes every 2026-07-28 client,
whose protocol has no such notification (and no connection outliving a request).

(No `from __future__ import annotations`: the SDK reads the resolvers' annotations.)"""

from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import ListRoots, Resolve
from mcp.server.session import ServerSession
from mcp_types import ListRootsResult
from mcp_types.methods import CLIENT_NOTIFICATIONS

from tutti_mcp.tools import workflow as wfl
from tutti_mcp.tools.workspace import KnownRoots

LIST_CHANGED = "notifications/roots/list_changed"
KEY = "tutti/roots"  # in the connection's state


def _connection_state(session: ServerSession) -> dict[str, Any] | None:
    # mcp 2.3.0 gives a handler no public handle on its connection (as in
    # server/tasks_notify.py); its `state` is what the SDK keeps per connection.
    connection = getattr(session, "_connection", None)
    return None if connection is None else connection.state


def kept_roots(session: ServerSession) -> KnownRoots | None:
    """The roots kept for `session`'s connection, if any are."""
    state = _connection_state(session)
    known = None if state is None else state.get(KEY)
    return known if isinstance(known, KnownRoots) else None


def _known_roots(ctx: Context) -> KnownRoots | None:
    """Where this client's roots are kept; None: it cannot announce changes, ask it each
    time."""
    caps = ctx.client_capabilities
    version = ctx.request_context.protocol_version
    if caps is None or caps.roots is None or not caps.roots.list_changed:
        return None
    if (LIST_CHANGED, version) not in CLIENT_NOTIFICATIONS:
        return None  # 2026-07-28: declared or not, it has no way to announce them
    session = ctx.request_context.session
    known = kept_roots(session)
    state = _connection_state(session)
    if known is None and state is not None:
        known = state[KEY] = KnownRoots()
        connection = session._connection
        # dropped when the connection ends, though a run bound to a request of it lives on
        connection.exit_stack.callback(state.pop, KEY, None)
    return known


@dataclass(frozen=True)
class _Lookup:
    """What a call knows of the client's roots before asking: the kept answer, and the
    generation an answer asked now belongs to."""

    known: KnownRoots | None
    generation: int
    uris: list[str] | None


async def _look_up(ctx: Context) -> _Lookup | None:
    """None: the roots do not choose the workspace (it is fixed, or the client offers
    none)."""
    caps = ctx.client_capabilities
    state = ctx.request_context.lifespan_context
    assert isinstance(state, wfl.ToolState)
    if caps is None or caps.roots is None or state.workspace_fixed is not None:
        return None
    known = _known_roots(ctx)
    if known is None:
        return _Lookup(None, 0, None)
    return _Lookup(known, known.generation, known.get())


async def _ask(lookup: Annotated[_Lookup | None, Resolve(_look_up)]) -> ListRoots | None:
    """`roots/list`, on both protocol generations, unless the answer is kept."""
    if lookup is None or lookup.uris is not None:
        return None
    return ListRoots()


async def _root_uris(
    lookup: Annotated[_Lookup | None, Resolve(_look_up)],
    answer: Annotated[ListRootsResult | None, Resolve(_ask)],
) -> list[str] | None:
    if lookup is None:
        return None
    if lookup.uris is not None:
        return lookup.uris
    assert answer is not None  # asked, since nothing was kept
    uris = [str(r.uri) for r in answer.roots]
    if lookup.known is not None:
        lookup.known.keep(uris, lookup.generation)
    return uris


RootUris = Annotated[list[str] | None, Resolve(_root_uris)]
"""The client's root URIs; None where it offers no roots or they are not asked."""


async def _forget_changed_roots(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    """Middleware: the client's `notifications/roots/list_changed` drops its kept roots.
    (mcp 2.3.0's MCPServer has no public notification handler; its middleware sees every
    inbound message.)"""
    if ctx.method == LIST_CHANGED and ctx.request_id is None:
        known = kept_roots(ctx.session)
        if known is not None:
            known.changed()
    return await call_next(ctx)


def register(server: MCPServer[Any]) -> None:
    server.middleware.append(_forget_changed_roots)
