"""The workspace of a run started over MCP, chosen by the client's roots (`roots/list`)
inside the directory the server runs in; TUTTI_WORKSPACE overrides them. The runs report
where they worked through a `pwd` shell step (its cwd is the run's workspace). A client
that announces changes of its roots is asked once per connection, until it announces one;
any other client is asked every time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client._memory import InMemoryTransport
from mcp.client.session import ClientRequestContext
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.message import SessionMessage
from mcp_types import (
    InputRequiredResult,
    JSONRPCRequest,
    ListRootsResult,
    Root,
    RootsListChangedNotification,
)

from tests.server.http_support import serving_http
from tests.server.mcp_support import MODES, call, connect, fail, settings, until_settled
from tests.server.tasks_support import TaskCreated, TasksClaim, start_task_v1
from tests.test_durability import cli_env
from tutti_mcp.server.app import create_server
from tutti_mcp.tools.roots_mcp import kept_roots
from tutti_mcp.tools.workspace import MAX_KEPT_ROOTS, KnownRoots, usable_roots

pytestmark = pytest.mark.anyio

WHERE: dict[str, Any] = {"name": "where", "steps": [{"id": "here", "argv": ["pwd"]}]}
WHERE_YAML = "name: where-file\nsteps:\n  - id: here\n    argv: [pwd]\n"
SHELL = settings(allow_shell=frozenset({"pwd"}))


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory the server runs in (no TUTTI_WORKSPACE): it bounds the roots."""
    home = tmp_path / "server"
    home.mkdir()
    monkeypatch.chdir(home)
    return home.resolve()


class Roots:
    """The client's roots callback: answers with these URIs, counting the requests."""

    def __init__(self, *uris: str) -> None:
        self.uris = uris
        self.asked = 0

    async def __call__(self, context: ClientRequestContext) -> ListRootsResult:
        self.asked += 1
        return ListRootsResult(roots=[Root(uri=u) for u in self.uris])


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path.resolve()


async def ran_in(client: Any, spec: dict[str, Any] | str) -> str:
    run = await call(client, "workflow_start", spec=spec, wait_s=10)
    assert run["status"] == "succeeded", run
    return str(run["outputs"]["here"]).strip()


async def test_a_run_works_in_the_clients_first_root_and_the_plan_says_why(
    mode: str, server_dir: Path
) -> None:
    first, second = mkdir(server_dir / "first"), mkdir(server_dir / "second")
    roots = Roots(first.as_uri(), second.as_uri())
    with anyio.fail_after(20):
        async with connect(mode, SHELL, workspace=None, list_roots_callback=roots) as c:
            plan = await call(c, "workflow_plan", spec=WHERE)
            cwd = await ran_in(c, WHERE)
    assert plan["workspace"] == {
        "path": str(first),
        "why": f"the client's first root, {first.as_uri()}",
    }
    assert cwd == str(first)
    # 2025-11-25: once per connection (the client announces changes); 2026-07-28: per call
    assert roots.asked == (1 if mode == "legacy" else 2)


async def test_a_spec_given_as_a_path_runs_in_its_files_directory_in_the_root_that_has_it(
    mode: str, server_dir: Path
) -> None:
    first, second = mkdir(server_dir / "first"), mkdir(server_dir / "second")
    specs = mkdir(second / "specs")
    (specs / "where.yaml").write_text(WHERE_YAML, encoding="utf-8")
    roots = Roots(first.as_uri(), second.as_uri())
    with anyio.fail_after(20):
        async with connect(mode, SHELL, workspace=None, list_roots_callback=roots) as c:
            plan = await call(c, "workflow_plan", spec="specs/where.yaml")
            relative = await ran_in(c, "specs/where.yaml")  # only the second root has it
            absolute = await ran_in(c, str(specs / "where.yaml"))
            missing = await fail(c, "workflow_plan", spec="specs/none.yaml")
    assert plan["workspace"]["path"] == str(specs)
    assert plan["workspace"]["why"].startswith(
        f"the directory of the spec file specs/where.yaml, in the client's root {second.as_uri()}"
    )
    assert relative == absolute == str(specs)
    assert "no spec file at 'specs/none.yaml'" in missing
    assert first.as_uri() in missing and str(server_dir) in missing  # every place looked in


async def test_roots_outside_the_servers_directory_or_not_directories_are_skipped_with_reasons(
    mode: str, server_dir: Path, tmp_path: Path
) -> None:
    outside = mkdir(tmp_path / "elsewhere")
    (outside / "where.yaml").write_text(WHERE_YAML, encoding="utf-8")
    inside = mkdir(server_dir / "inside")
    a_file = server_dir / "file.txt"
    a_file.write_text("not a directory", encoding="utf-8")
    gone = server_dir / "gone"
    roots = Roots(outside.as_uri(), a_file.as_uri(), gone.as_uri(), inside.as_uri())
    with anyio.fail_after(20):
        async with connect(mode, SHELL, workspace=None, list_roots_callback=roots) as c:
            plan = await call(c, "workflow_plan", spec=WHERE)
            cwd = await ran_in(c, WHERE)
            refused = await fail(c, "workflow_start", spec=str(outside / "where.yaml"))
        only_outside = Roots(outside.as_uri())
        async with connect(mode, SHELL, workspace=None, list_roots_callback=only_outside) as c:
            fallback = await call(c, "workflow_plan", spec=WHERE)
    assert plan["workspace"]["path"] == str(inside) == cwd
    why = plan["workspace"]["why"]
    assert why.startswith(f"the client's first root, {inside.as_uri()} (skipped: ")
    assert f"{outside.as_uri()} is outside the directory the server runs in ({server_dir})" in why
    assert f"{a_file.as_uri()} is not a directory on this machine" in why
    assert f"{gone.as_uri()} is not a directory on this machine" in why
    # a root the server would not accept does not let a spec file in through it either
    assert "is outside" in refused and "pass the spec itself as an object" in refused
    assert fallback["workspace"]["path"] == str(server_dir)
    assert fallback["workspace"]["why"].startswith(
        "the directory the server runs in: none of the client's roots can be used"
    )


async def test_tutti_workspace_overrides_the_roots_which_are_then_not_asked_for(
    mode: str, server_dir: Path, tmp_path: Path
) -> None:
    fixed = mkdir(tmp_path / "fixed")
    (fixed / "where.yaml").write_text(WHERE_YAML, encoding="utf-8")
    config = settings(allow_shell=frozenset({"pwd"}), workspace=fixed)
    roots = Roots(mkdir(server_dir / "root").as_uri())
    with anyio.fail_after(20):
        async with connect(mode, config, workspace=None, list_roots_callback=roots) as c:
            plan = await call(c, "workflow_plan", spec="where.yaml")
            cwd = await ran_in(c, "where.yaml")  # not the file's directory's either: it is fixed
    assert plan["workspace"] == {
        "path": str(fixed),
        "why": "TUTTI_WORKSPACE is set: it overrides the client's roots and the spec file's "
        "directory",
    }
    assert cwd == str(fixed)
    assert roots.asked == 0


async def test_a_client_without_roots_gets_the_servers_directory(
    mode: str, server_dir: Path
) -> None:
    with anyio.fail_after(20):
        async with connect(mode, SHELL, workspace=None) as c:
            plan = await call(c, "workflow_plan", spec=WHERE)
            cwd = await ran_in(c, WHERE)
    assert plan["workspace"] == {
        "path": str(server_dir),
        "why": "the directory the server runs in: the client offers no roots",
    }
    assert cwd == str(server_dir)


async def test_a_fork_works_where_its_parent_worked(server_dir: Path) -> None:
    root = mkdir(server_dir / "root")
    roots = Roots(root.as_uri())
    with anyio.fail_after(20):
        async with connect("legacy", SHELL, workspace=None, list_roots_callback=roots) as c:
            run = await call(c, "workflow_start", spec=WHERE, wait_s=10)
            fork = await call(
                c, "workflow_resume", run_id=run["run_id"], from_step="here", wait_s=10
            )
    assert fork["forked_from"] == run["run_id"] and fork["status"] == "succeeded", fork
    assert fork["outputs"]["here"].strip() == str(root)


def test_only_file_roots_on_this_machine_count() -> None:
    usable, skipped = usable_roots(
        ["https://example.com/repo", "file://build-host/srv/repo", "file:///"], Path("/")
    )
    assert [str(r.path) for r in usable] == ["/"]
    assert skipped == [
        "https://example.com/repo is not a file:// root",
        "file://build-host/srv/repo names another host (build-host)",
    ]


async def test_a_run_started_as_a_task_works_in_the_clients_first_root(
    mode: str, server_dir: Path
) -> None:
    root = mkdir(server_dir / "root")
    roots = Roots(root.as_uri())
    kw: dict[str, Any] = {"extensions": [TasksClaim()]} if mode == "auto" else {}
    with anyio.fail_after(20):
        async with connect(mode, SHELL, workspace=None, list_roots_callback=roots, **kw) as c:
            if mode == "auto":  # a tasks client answers the roots request, then gets its task
                args = {"spec": WHERE}
                first = await c.session.call_tool("workflow_start", args, allow_input_required=True)
                assert isinstance(first, InputRequiredResult), first
                ((key, ask),) = (first.input_requests or {}).items()
                assert ask.method == "roots/list"
                created = await c.session.call_tool(
                    "workflow_start",
                    args,
                    input_responses={key: await roots(None)},  # type: ignore[arg-type]
                    request_state=first.request_state,
                    allow_claimed=True,
                )
                assert isinstance(created, TaskCreated), created
                rid = (created.meta or {})["tutti/runId"]
            else:
                legacy = await start_task_v1(c, "workflow_start", {"spec": WHERE})
                rid = legacy["_meta"]["tutti/runId"]
            done = await until_settled(c, rid)  # a step may finish before its run does
    assert done["status"] == "succeeded", done
    assert done["outputs"]["here"].strip() == str(root)
    assert roots.asked == 1


# -- kept per connection -----------------------------------------------------------------------
async def announce_change(client: Client) -> None:
    # Client.send_roots_list_changed is deprecated (roots are, from 2026-07-28): this is it
    await client.session.send_notification(RootsListChangedNotification())


class _DeclaresNoListChanged:
    """A client's write stream whose `initialize` declares `roots: {}`: the client lists
    roots but does not say it will announce their changes (the SDK's client always does)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def send(self, item: SessionMessage) -> None:
        msg = item.message
        if isinstance(msg, JSONRPCRequest) and msg.method == "initialize" and msg.params:
            msg.params["capabilities"]["roots"] = {}
        await self.inner.send(item)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> _DeclaresNoListChanged:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return bool(await self.inner.__aexit__(kind, exc, tb))


@asynccontextmanager
async def without_list_changed(server: Any) -> AsyncIterator[tuple[Any, Any]]:
    """An in-process 2025-11-25 transport to `server` for a client without
    `roots.listChanged`."""
    async with InMemoryTransport(server) as (read, write):
        yield read, _DeclaresNoListChanged(write)


async def test_a_client_that_announces_root_changes_is_asked_once_per_connection(
    server_dir: Path,
) -> None:
    root = mkdir(server_dir / "root")
    server = create_server(SHELL, workspace=None)
    one, two = Roots(root.as_uri()), Roots(root.as_uri())
    with anyio.fail_after(20):
        async with (
            Client(server, mode="legacy", list_roots_callback=one) as a,
            Client(server, mode="legacy", list_roots_callback=two) as b,
        ):
            plans = [await call(c, "workflow_plan", spec=WHERE) for c in (a, b, a, b)]
            cwd = await ran_in(a, WHERE)
    assert [p["workspace"]["path"] for p in plans] == [str(root)] * 4
    assert cwd == str(root)
    assert (one.asked, two.asked) == (1, 1)  # each connection asks its own client, once


async def test_after_the_client_announces_a_change_the_next_plan_asks_again_and_uses_the_new_root(
    server_dir: Path,
) -> None:
    first, second = mkdir(server_dir / "first"), mkdir(server_dir / "second")
    roots = Roots(first.as_uri())
    with anyio.fail_after(20):
        async with connect("legacy", SHELL, workspace=None, list_roots_callback=roots) as c:
            before = await call(c, "workflow_plan", spec=WHERE)
            roots.uris = (second.as_uri(),)
            unannounced = await call(c, "workflow_plan", spec=WHERE)
            await announce_change(c)
            after = await call(c, "workflow_plan", spec=WHERE)
            cwd = await ran_in(c, WHERE)
    paths = [p["workspace"]["path"] for p in (before, unannounced, after)]
    assert paths == [str(first), str(first), str(second)]
    assert cwd == str(second)
    assert roots.asked == 2


@pytest.mark.parametrize("client", ["2025-11-25 without roots.listChanged", "2026-07-28"])
async def test_a_client_that_cannot_announce_root_changes_is_asked_every_time(
    client: str, server_dir: Path
) -> None:
    """2026-07-28 has no notifications/roots/list_changed: whatever the client declares
    (the SDK's declares listChanged), it cannot announce a change."""
    first, second = mkdir(server_dir / "first"), mkdir(server_dir / "second")
    roots = Roots(first.as_uri())
    server = create_server(SHELL, workspace=None)
    legacy = client.startswith("2025")
    target: Any = without_list_changed(server) if legacy else server
    with anyio.fail_after(20):
        async with Client(
            target, mode="legacy" if legacy else "auto", list_roots_callback=roots
        ) as c:
            before = await call(c, "workflow_plan", spec=WHERE)
            roots.uris = (second.as_uri(),)
            after = await call(c, "workflow_plan", spec=WHERE)
            cwd = await ran_in(c, WHERE)
    assert [before["workspace"]["path"], after["workspace"]["path"]] == [str(first), str(second)]
    assert cwd == str(second)
    assert roots.asked == 3


async def test_the_kept_roots_are_dropped_when_the_connection_ends(server_dir: Path) -> None:
    root = mkdir(server_dir / "root")
    server = create_server(SHELL, workspace=None)
    sessions: list[ServerSession] = []

    async def record(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call":
            sessions.append(ctx.session)
        return await call_next(ctx)

    server.middleware.append(record)
    with anyio.fail_after(20):
        async with Client(server, mode="legacy", list_roots_callback=Roots(root.as_uri())) as c:
            await call(c, "workflow_plan", spec=WHERE)
            during = kept_roots(sessions[0])
            kept = None if during is None else during.get()
    assert kept == [root.as_uri()]
    assert kept_roots(sessions[0]) is None


def test_kept_roots_expire_and_an_answer_asked_before_a_change_is_not_kept() -> None:
    now = [0.0]
    known = KnownRoots(ttl_s=60, clock=lambda: now[0])
    known.keep(["file:///a"], known.generation)
    now[0] = 59.9
    assert known.get() == ["file:///a"]
    now[0] = 60.0
    assert known.get() is None  # a client that never announces still gets asked again
    asked_in = known.generation
    known.changed()
    known.keep(["file:///old"], asked_in)  # answered before the change, stored after it
    assert known.get() is None
    known.keep([f"file:///r{i}" for i in range(MAX_KEPT_ROOTS + 1)], known.generation)
    assert known.get() is None  # too long to keep for the connection
    known.keep(["file:///new"], known.generation)
    assert known.get() == ["file:///new"]


async def test_over_streamable_http_the_roots_are_kept_per_session_until_it_announces_a_change(
    server_dir: Path,
) -> None:
    """The announcement arrives in a POST of its own: the session id ties it to the
    connection that keeps the roots."""
    first, second = mkdir(server_dir / "first"), mkdir(server_dir / "second")
    env = {**cli_env(), "TUTTI_DB": str(server_dir / "runs.db")}
    roots, other = Roots(first.as_uri()), Roots(second.as_uri())
    with anyio.fail_after(30):
        async with serving_http(env, server_dir) as served:
            url = served.url
            async with Client(url, mode="legacy", list_roots_callback=roots) as c:
                plans = [await call(c, "workflow_plan", spec=WHERE) for _ in range(2)]
                async with Client(url, mode="legacy", list_roots_callback=other) as d:
                    plans.append(await call(d, "workflow_plan", spec=WHERE))
                roots.uris = (second.as_uri(),)
                await announce_change(c)
                plans += [await call(c, "workflow_plan", spec=WHERE) for _ in range(2)]
    paths = [p["workspace"]["path"] for p in plans]
    assert paths == [str(first), str(first), str(second), str(second), str(second)]
    assert (roots.asked, other.asked) == (2, 1)
