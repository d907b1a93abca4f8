"""Step executors: builtin, shell, prompt (Anthropic API), client (handed back)."""
