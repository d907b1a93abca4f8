"""`tutti schema [--output FILE]`: the JSON Schema of workflow specs (engine.spec_schema), for
editors: a YAML spec whose first line is `# yaml-language-server: $schema=FILE` is checked
as it is typed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tutti_mcp.engine.errors import TuttiError
from tutti_mcp.engine.spec_schema import schema_text
from tutti_mcp.server.exit_codes import EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(args.output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TuttiError(
            f"cannot write the schema to {path}: {reason}; give --output a file in a "
            "directory you can write to"
        ) from None
    from tutti_mcp.server.console import err  # rich only when there is a message to print

    err.print(
        f"wrote {path}; a YAML spec whose first line is "
        f"`# yaml-language-server: $schema={path.resolve().as_uri()}` is checked by editors "
        "that use the YAML language server",
        markup=False,
    )
    return EXIT_OK
