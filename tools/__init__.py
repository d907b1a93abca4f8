"""MCP tool adapters: thin functions over engine/ and memory/ (they arrive with the MCP server)."""
