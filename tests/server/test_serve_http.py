"""`tutti serve --http`: a real subprocess serving streamable HTTP on 127.0.0.1, driven by
the SDK's HTTP client: a run started in one client session is finished from another
(the run belongs to the server, not to a session); SIGTERM stops the server."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client import Client

from tests.server.http_support import serving_http
from tests.test_durability import ROOT, cli_env
from tutti_mcp.server.cli_serve import endpoint_url, exposure_warning

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="signals")]


@pytest.mark.parametrize(
    ("host", "warns"),
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("127.0.0.2", False),
     ("0.0.0.0", True), ("192.168.1.5", True), ("myhost.example", True)],
)  # fmt: skip
def test_binding_beyond_loopback_warns(host: str, warns: bool) -> None:
    warning = exposure_warning(host)
    assert (warning is not None) is warns
    if warning:
        assert host in warning and "no authentication" in warning


async def test_http_server_runs_a_workflow_across_sessions(tmp_path: Path) -> None:
    env = {**cli_env(), "TUTTI_DB": str(tmp_path / "runs.db"), "TUTTI_LOG_LEVEL": "INFO"}
    spec = {
        "name": "over-http",
        "steps": [
            {"id": "greet", "op": "template", "args": "hello"},
            {"id": "answer", "prompt": "Reply to ${greet.output}"},
            {"id": "done", "op": "template", "args": "${answer.output}!"},
        ],
    }
    with anyio.fail_after(30):
        async with serving_http(env, ROOT) as served:
            # where to connect, in full, on stderr (stdout may be the client's)
            assert f"tutti serving MCP at {served.url}\n" in served.said
            async with Client(served.url, mode="legacy") as c:
                r = await c.call_tool("workflow_start", {"spec": spec, "wait_s": 10})
                run = r.structured_content
                assert run is not None and not r.is_error
                assert [t["step_id"] for t in run["client_tasks"]] == ["answer"]
                assert run["client_tasks"][0]["instructions"] == "Reply to hello"
            # another session (and protocol generation) completes the task
            async with Client(served.url, mode="auto") as c:
                r = await c.call_tool(
                    "step_complete",
                    {"run_id": run["run_id"], "step_id": "answer", "output": "hi"},
                )
                done = r.structured_content
                assert done is not None and done["status"] == "succeeded", r.content
                assert done["outputs"]["done"] == "hi!"
            served.process.send_signal(signal.SIGTERM)
            assert await served.process.wait() == 0


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8765/mcp"), ("::1", "http://[::1]:8765/mcp"),
     ("localhost", "http://localhost:8765/mcp")],
)  # fmt: skip
def test_the_endpoint_url_includes_mcp_and_brackets_ipv6(host: str, url: str) -> None:
    assert endpoint_url(host, 8765) == url


def test_serve_with_an_unusable_database_exits_2_and_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tutti_mcp.server.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = main(["--db", str(blocker / "tutti.db"), "serve"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot open the database" in err and "TUTTI_DB" in err
