"""Checks on a workflow's dependency graph as a whole: cycles, and the steps that run only
when another fails or is rejected (fallbacks, a gate's on_reject step)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from tutti_mcp.engine.errors import Problem

if TYPE_CHECKING:
    import networkx as nx


def cycle_problems(g: nx.DiGraph, ids: list[str]) -> list[Problem]:
    """One problem per group of steps that depend on each other in a circle (a strongly
    connected component), in spec order: its shortest cycle through its first step."""
    import networkx as nx

    if nx.is_directed_acyclic_graph(g):  # the usual case, and the fastest check
        return []
    first: dict[str, int] = {}
    for i, sid in enumerate(ids):
        first.setdefault(sid, i)
    circles = [c for c in nx.strongly_connected_components(g) if len(c) > 1]
    circles.sort(key=lambda c: min(first[s] for s in c))
    problems = []
    for circle in circles:
        path = _cycle_through(g, circle, min(circle, key=first.__getitem__), first)
        problems.append(
            Problem(
                "steps",
                "dependency cycle: " + " -> ".join(path) + " (remove one of these edges)",
            )
        )
    return problems


def _cycle_through(g: nx.DiGraph, circle: set[str], start: str, first: dict[str, int]) -> list[str]:
    """The shortest cycle from `start` back to it inside `circle` (breadth first, each step's
    dependents taken in spec order, so the same spec always names the same cycle)."""
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        u = queue.popleft()
        for v in sorted(g.successors(u), key=first.__getitem__):
            if v == start:
                path = [u]
                while (p := parent[path[-1]]) is not None:
                    path.append(p)
                return [*reversed(path), start]
            if v in circle and v not in parent:
                parent[v] = u
                queue.append(v)
    raise AssertionError(f"{start!r} is on no cycle of its strongly connected component")


def fallback_problems(
    g: nx.DiGraph, ids: list[str], deps: dict[str, list[str]], fallback_of: dict[str, str]
) -> list[Problem]:
    """A fallback runs only when its primary fails: nothing else may need it, and it may
    need only what its primary needs."""
    import networkx as nx

    problems: list[Problem] = []
    for f, p in fallback_of.items():
        users = [s for s in ids if f in deps[s]]
        if users:
            problems.append(
                Problem(
                    f"steps ({f})",
                    f"{f!r} is the fallback of {p!r}, so it runs only if {p!r} fails; "
                    f"{', '.join(users)} should depend on {p!r} instead",
                )
            )
        extra = set(deps[f]) - nx.ancestors(g, p)
        if extra:
            problems.append(
                Problem(
                    f"steps ({f}).depends_on",
                    f"fallback step {f!r} may only depend on steps that {p!r} depends on; "
                    f"not on {', '.join(sorted(extra))}",
                )
            )
    return problems


def reject_problems(
    g: nx.DiGraph,
    ids: list[str],
    deps: dict[str, list[str]],
    reject_of: dict[str, str],
    fallback_of: dict[str, str],
) -> list[Problem]:
    """A gate's on_reject step runs instead of the gate's dependents: it cannot need them
    (they are skipped when it runs), and it cannot be a fallback as well."""
    import networkx as nx

    problems: list[Problem] = []
    for target, gate in reject_of.items():
        where = f"steps ({gate}).on_reject"
        if target in fallback_of:
            problems.append(
                Problem(
                    where,
                    f"{target!r} is the fallback of {fallback_of[target]!r}; a step is either a "
                    "fallback or a gate's on_reject step, not both",
                )
            )
        if not nx.is_directed_acyclic_graph(g):
            continue  # reported as a cycle
        needs = [
            d for d in ids if d != target and gate in deps[d] and target in nx.descendants(g, d)
        ]
        if needs:
            problems.append(
                Problem(
                    where,
                    f"on_reject step {target!r} depends on {', '.join(needs)}, which run only if "
                    f"gate {gate!r} is approved; it would never run. Make {target!r} depend on "
                    f"steps before {gate!r} only",
                )
            )
    return problems
