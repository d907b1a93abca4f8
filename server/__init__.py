"""The `tutti` command line and settings; the MCP server joins them next."""
