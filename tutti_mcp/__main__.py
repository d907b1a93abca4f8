"""`python -m tutti_mcp` is the `tutti` command."""

from tutti_mcp.server.cli import main

raise SystemExit(main())
