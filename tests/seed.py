"""The seed document's chain example, exactly as it is written there: it must validate
and run. `examples/seed-chain.json` holds the same workflow."""

from __future__ import annotations

from typing import Any

SEED_CHAIN: dict[str, Any] = {
    "type": "chain",
    "steps": [
        {
            "id": "analyze_codebase",
            "command": "/query",
            "args": "analyze Python security vulnerabilities",
            "timeout": 300,
        },
        {
            "id": "fix_issues",
            "command": "/task",
            "args": "fix security issues: ${analyze_codebase.results}",
            "depends_on": ["analyze_codebase"],
        },
        {
            "id": "validate_fixes",
            "command": "/protocol",
            "args": "run security validation",
            "depends_on": ["fix_issues"],
        },
    ],
    "optimization": {
        "parallel_where_possible": True,
        "adaptive_thinking": True,
        "state_persistence": True,
    },
}
