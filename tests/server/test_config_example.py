"""The example client configuration is valid JSON, starts `tutti serve` the way CI's
inspector check does, and names only settings tutti reads."""

from __future__ import annotations

import json
from pathlib import Path

import tutti_mcp.server.settings

ROOT = Path(__file__).resolve().parents[2]


def test_claude_desktop_example_starts_tutti_serve_with_known_settings() -> None:
    config = json.loads((ROOT / "claude_desktop_config.example.json").read_text())
    entry = config["mcpServers"]["tutti"]
    assert entry["command"] == "uv"
    assert entry["args"] == ["--directory", "/path/to/tutti", "run", "tutti", "serve"]
    documented = tutti_mcp.server.settings.__doc__ or ""
    for name in entry["env"]:
        assert f"| {name} |" in documented, f"{name} is not a setting tutti reads"
    inspector = (ROOT / ".ci" / "inspector-check").read_text()
    assert "--directory" in inspector and "run tutti serve" in inspector
