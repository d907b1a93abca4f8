"""tutti: durable, parallel multi-step AI workflows for Claude clients, as an MCP tool server.

The import package of the `tutti-mcp` distribution. Its subpackages are the repository's
top-level folders (`engine`, `memory`, `tools`, `server`); in a clone they are reached
through symlinks in this folder, in the wheel they are copied in.
"""

__version__ = "0.2.0"
