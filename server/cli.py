"""The `tutti` command: run, plan, resume, runs, show, complete, prune, serve, models, memory.

This module and server/cli_parser.py import only argparse: `tutti --help` and `--version`
answer without loading the engine, the MCP SDK, rich or the Anthropic SDK. The command's own
module (server/cli_runs.py, cli_plan.py, cli_serve.py, models_cli.py, memory_cli.py) is
imported once the command line has named it, and imports what that command needs.

Spec files named on the command line are read wherever they are: the user who types the
command can read them anyway. (The MCP tools, whose caller is a model, read spec files only
inside the workspace.) Both hold a file to the same limits and give the same clean errors:
`error: workflow spec is invalid ...` naming the file, exit 2."""

from __future__ import annotations

import sys

from tutti_mcp.server.cli_parser import parser
from tutti_mcp.server.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, EXIT_WAITING


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # --help, --version and usage errors exit here
    if getattr(args, "db", None) is None:
        args.db = None
    from tutti_mcp.server.cli_common import run_command

    return run_command(args)


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "EXIT_WAITING", "main", "parser"]

if __name__ == "__main__":
    sys.exit(main())
