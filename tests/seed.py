"""The seed document's examples, exactly as they are written there: they must validate
and run. `examples/seed-chain.json` holds the chain; `examples/swarm-review.yaml` is the
swarm with its task as an input."""

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


# The seed's swarm example, as written there ("Swarm Workflow"): the top-level swarm form.
SEED_SWARM: dict[str, Any] = {
    "type": "swarm",
    "topology": "hierarchical",
    "agents": {
        "coordinator": {
            "role": "Task decomposition and synthesis",
            "model": "claude-4-opus",
            "capabilities": ["planning", "coordination", "synthesis"],
        },
        "security_specialist": {
            "role": "Security analysis",
            "model": "claude-4-sonnet",
            "tools": ["/grep", "/bash security-scan"],
        },
        "performance_specialist": {
            "role": "Performance optimization",
            "model": "claude-4-sonnet",
            "tools": ["/bash profiler", "/glob"],
        },
    },
    "coordination": {
        "communication": "event_driven",
        "state_sharing": "hierarchical",
        "conflict_resolution": "consensus",
    },
}
