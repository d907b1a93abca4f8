"""The two consoles every command prints through: `out` (stdout: results) and `err`
(stderr: progress, errors, where things are). Only rich's console is imported here, so a
command that prints no table or run pays for nothing more."""

from __future__ import annotations

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
