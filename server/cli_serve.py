"""`tutti serve`: the MCP server over stdio, or streamable HTTP with --http.

A client waits for the answer to `initialize` before it shows the server's tools, and some
give up after a few seconds: what is imported and done before that answer is kept to what
the server needs to answer it (the Anthropic SDK, for one, is loaded when the first prompt
step runs; see server/api_client.py)."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutti_mcp.server.cli_common import check_database
from tutti_mcp.server.exit_codes import EXIT_OK
from tutti_mcp.server.settings import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer


def exposure_warning(host: str) -> str | None:
    """What to say when `tutti serve --http` binds where other machines can reach it."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        loopback = False
    if loopback:
        return None
    return (
        f"serving on {host}: anyone who can reach this port can run workflows (and shell "
        "steps, if allowed). tutti has no authentication; prefer 127.0.0.1 behind a proxy "
        "that adds it."
    )


def endpoint_url(host: str, port: int) -> str:
    """The streamable HTTP endpoint `tutti serve --http` answers at (the SDK's `/mcp`)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/mcp"


def new_server(settings: Settings, workspace: Path | None) -> MCPServer[Any]:
    """The server, made with the garbage collector off: importing the MCP SDK (hundreds of
    pydantic models for its two protocol generations) and tutti creates ~170,000 objects
    the collector tracks, nearly all kept for the life of the process; the ~270 collections
    it would run meanwhile free ~1,000 objects and cost ~15% of the import's CPU time. They
    are then frozen, so the collections of a long-lived server skip them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        from tutti_mcp.server.app import create_server

        return create_server(settings, workspace=workspace)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=os.environ.get("TUTTI_LOG_LEVEL", "WARNING").upper(),
        stream=sys.stderr,
        format="tutti %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings.from_env(db=args.db)
    check_database(settings.db_path)  # fail here, clearly, rather than inside the server
    server = new_server(settings, Path(args.workspace) if args.workspace else None)
    # SIGTERM takes the Ctrl-C path: runs in flight are recorded interrupted, resumable.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.http:
            from tutti_mcp.server.console import err

            warning = exposure_warning(args.host)
            if warning:
                err.print(f"[bold yellow]warning:[/bold yellow] {warning}", markup=True)
            # stdout may be read by whoever started us: say where to connect on stderr
            err.print(f"tutti serving MCP at {endpoint_url(args.host, args.port)}", markup=False)
            server.run("streamable-http", host=args.host, port=args.port)
        else:
            server.run()
    except KeyboardInterrupt:
        # The runs in flight are recorded interrupted by now (the lifespan has exited), but
        # the SDK's stdin reader thread stays blocked until stdin closes: a supervisor that
        # sends SIGTERM without closing it would wait forever. Leave without joining it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return EXIT_OK
