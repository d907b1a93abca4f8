"""Memory files: Anthropic's memory-tool semantics over SQLite, with search and history."""
