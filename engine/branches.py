"""Conditional steps that exclude each other, so the plan's one-by-one time counts only the
branches that can run together (a flow's if/else takes one branch, not both).

The spec language has one form of branching: a step's `when`. Two conditions exclude each
other when the planner can tell from their text alone that they cannot both hold:

- one is the other negated: `x` and `not x`;
- both compare the same expression with a constant, and no value satisfies both
  comparisons: `n > 0` / `n == 0`, `n < 3` / `n >= 3`, `s == 'a'` / `s == 'b'`,
  `x in [..]` / `x not in [..]` (the same list).

Each condition is evaluated once per run on values that no longer change (the outputs of
the steps it reads), so such steps never both run. A step that needs a skipped step is
skipped too (unless its trigger is `all_done`), so a branch is a conditional step and
everything that runs only through it. Any other pair of conditions may both hold.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from tutti_mcp.engine.spec import Trigger
from tutti_mcp.engine.template_sandbox import ENV
from tutti_mcp.engine.templating import unwrap_condition
from tutti_mcp.engine.workflow import Workflow

# Beyond this many combinations of alternatives (or steps in one group, whose subsets are
# tried), every step counts, as without alternatives: the estimate errs on the long side.
MAX_COMBINATIONS = 4096
_MAX_GROUP = 12
_NEGATED = {"eq": "ne", "ne": "eq", "in": "notin", "notin": "in"}
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda x, c: x == c,
    "ne": lambda x, c: x != c,
    "lt": lambda x, c: x < c,
    "lteq": lambda x, c: x <= c,
    "gt": lambda x, c: x > c,
    "gteq": lambda x, c: x >= c,
}


@lru_cache(maxsize=1024)
def _expression(condition: str) -> nodes.Expr | None:
    """The condition's expression tree; None when it cannot be read or is not repeatable."""
    try:
        body = ENV.parse("${" + unwrap_condition(condition) + "}").body
    except TemplateSyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    expr = body[0].nodes[0]
    if any(f.name == "random" for f in expr.find_all(nodes.Filter)):
        return None  # evaluated twice, it may answer twice differently
    return expr


def _comparison(expr: nodes.Expr) -> tuple[nodes.Expr, str, nodes.Expr] | None:
    if isinstance(expr, nodes.Compare) and len(expr.ops) == 1:
        return expr.expr, expr.ops[0].op, expr.ops[0].expr
    return None


def _disjoint(op1: str, c1: Any, op2: str, c2: Any) -> bool:
    """Whether no value satisfies both `x op1 c1` and `x op2 c2`."""
    if c1 == c2 and _NEGATED.get(op1) == op2:
        return True
    if op1 == op2 == "eq":
        return bool(c1 != c2)
    numbers = all(isinstance(c, int | float) and not isinstance(c, bool) for c in (c1, c2))
    if not numbers or op1 not in _NUMERIC or op2 not in _NUMERIC or not math.isfinite(c1 + c2):
        return False
    # Both sets are unions of intervals with ends at c1 and c2: if they meet, they meet at
    # an end, between the ends, or beyond them.
    lo, hi = min(c1, c2), max(c1, c2)
    points = (lo, hi, (lo + hi) / 2, lo - 1, hi + 1)
    return not any(_NUMERIC[op1](x, c1) and _NUMERIC[op2](x, c2) for x in points)


def exclusive(cond1: str, cond2: str) -> bool:
    """Whether two `when` conditions can never both hold (see the module's rules)."""
    a, b = _expression(cond1), _expression(cond2)
    if a is None or b is None:
        return False
    if (isinstance(a, nodes.Not) and a.node == b) or (isinstance(b, nodes.Not) and b.node == a):
        return True
    ca, cb = _comparison(a), _comparison(b)
    if ca is None or cb is None or ca[0] != cb[0]:
        return False
    (_, op1, rhs1), (_, op2, rhs2) = ca, cb
    if op1 in ("in", "notin") and rhs1 == rhs2:
        return _NEGATED[op1] == op2
    if not (isinstance(rhs1, nodes.Const) and isinstance(rhs2, nodes.Const)):
        return False
    return _disjoint(op1, rhs1.value, op2, rhs2.value)


def _subject(expr: nodes.Expr) -> str:
    """What a condition is about: only conditions about the same thing can exclude."""
    while isinstance(expr, nodes.Not):
        expr = expr.node
    cmp = _comparison(expr)
    return repr(cmp[0] if cmp is not None else expr)


def alternatives(wf: Workflow) -> list[list[str]]:
    """Groups of conditional steps linked by exclusion, in spec order: within a group,
    steps that exclude each other never both run."""
    by_subject: dict[str, list[str]] = {}
    for sid in wf.order:
        when = wf.steps[sid].when
        expr = _expression(when) if when and sid not in wf.fallback_of else None
        if expr is not None:
            by_subject.setdefault(_subject(expr), []).append(sid)
    import networkx as nx  # imported when needed: it is slow to import

    g = nx.Graph()
    for same in by_subject.values():
        for a, b in itertools.combinations(same, 2):
            if exclusive(wf.steps[a].when or "", wf.steps[b].when or ""):
                g.add_edge(a, b)
    index = {sid: i for i, sid in enumerate(wf.steps)}  # spec order, blocks' steps included
    groups = [sorted(c, key=index.__getitem__) for c in nx.connected_components(g)]
    return sorted(groups, key=lambda c: index[c[0]])


def _requires(wf: Workflow, steps: Sequence[str]) -> dict[str, frozenset[str]]:
    """For each step, the conditional steps that must run for it to run."""
    req: dict[str, frozenset[str]] = {}
    for sid in wf.order:
        step = wf.steps[sid]
        own = frozenset([sid]) if step.when else frozenset()
        if step.trigger is Trigger.ALL_SUCCEEDED:
            own = own.union(*(req[d] for d in wf.deps[sid]))
        req[sid] = own
    return {s: req[s] for s in steps}


def _choices(wf: Workflow, group: list[str]) -> list[frozenset[str]]:
    """The sets of a group's steps that can all run: its maximal independent sets."""
    out: list[frozenset[str]] = []
    for n in range(len(group), 0, -1):
        for combo in itertools.combinations(group, n):
            pick = frozenset(combo)
            if any(pick < c for c in out):
                continue
            if not any(
                exclusive(wf.steps[a].when or "", wf.steps[b].when or "")
                for a, b in itertools.combinations(combo, 2)
            ):
                out.append(pick)
    return out


def worst_case_s(
    wf: Workflow, steps: Sequence[str], est: Mapping[str, float], groups: list[list[str]]
) -> float:
    """The most time `steps` can take one by one in one run: the largest total over the
    steps that can run together, given the groups of alternatives."""
    everything = sum(est[s] for s in steps)
    if not groups or any(len(g) > _MAX_GROUP for g in groups):
        return everything
    choices = [_choices(wf, g) for g in groups]
    if math.prod(len(c) for c in choices) > MAX_COMBINATIONS:
        return everything
    members = frozenset().union(*map(frozenset, groups))
    req = {s: r & members for s, r in _requires(wf, steps).items()}
    best = 0.0
    for combo in itertools.product(*choices):
        allowed = frozenset().union(*combo)
        best = max(best, sum(est[s] for s in steps if req[s] <= allowed))
    return best
