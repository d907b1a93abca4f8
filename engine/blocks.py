"""`if` / `then` / `else` blocks, turned into ordinary steps before the graph is built.

A block `{id: check, if: COND, then: [...], else: [...]}` becomes:

- its nested steps, each guarded by the block's condition (`then`) or its negation
  (`else`), AND-ed with the step's own `when`: they are skipped through the usual `when`
  mechanism, so the branch not taken is recorded `skipped` with the condition and its
  value. The steps of a branch that need nothing else in it wait for the block's
  `depends_on` and for the steps its condition reads;
- a builtin step with the block's id, after both branches (`trigger: all_done`), whose
  output is the output of the taken branch's last step (`null` when that branch is a
  missing `else`): dependents of the block read `${check.output}` and run after it.

Blocks nest, and nested step ids are global like any other. Each flat step keeps the
path of the step it came from in the spec (`steps[2] (check).else[0] (fix)`), so
validation names what the author wrote, not what it became.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tutti_mcp.engine.errors import Problem, TemplateError
from tutti_mcp.engine.spec import BuiltinOp, Step, Trigger, WorkflowSpec
from tutti_mcp.engine.templating import evaluate_async, unwrap_condition

# What a block may carry besides its branches (field names, as pydantic knows them).
BLOCK_FIELDS = frozenset({"id", "if_", "then", "else_", "depends_on", "description"})
_ALIASES = {"if_": "if", "else_": "else"}


class Branch(StrEnum):
    THEN = "then"
    ELSE = "else"


@dataclass(frozen=True)
class Guard:
    """A step sits in branch `branch` of block `block`, whose condition is `condition`."""

    block: str
    condition: str  # the block's `if`, as written
    branch: Branch

    def reason(self, value: bool) -> str:
        """Why a step of this branch is skipped when the condition is `value`."""
        shown = "true" if value else "false"
        return (
            f"condition is {shown}: {self.condition} ({self.branch.value} branch of {self.block!r})"
        )


@dataclass(frozen=True)
class Decided:
    """A guarded step's condition, evaluated: what is recorded, and why it is skipped."""

    condition: str  # the condition that decided (a block's `if`, or the step's own `when`)
    value: bool | None  # its real value; None: it could not be evaluated
    skip: str | None  # None: the step runs


@dataclass(frozen=True)
class StepCondition:
    """The conditions of a step inside blocks: its blocks' (outermost first), then its own."""

    guards: tuple[Guard, ...]
    own: str | None  # the step's own `when`

    @property
    def when(self) -> str:
        """All of them as one condition: what the plan reads (`x` / `not x` branches are
        alternatives there)."""
        parts = [
            unwrap_condition(g.condition)
            if g.branch is Branch.THEN
            else f"not ({unwrap_condition(g.condition)})"
            for g in self.guards
        ]
        if self.own is not None:
            parts.append(unwrap_condition(self.own))
        return parts[0] if len(parts) == 1 else " and ".join(f"({p})" for p in parts)

    async def check(self, context: Mapping[str, Any], *, guards_only: bool = False) -> Decided:
        """Evaluate the guards outermost first, then the step's own `when` (unless
        `guards_only`). The decision recorded is the one that skipped the step, else its
        own `when`, else its innermost block's condition, always with the condition's real
        value (true for a step of an `else` branch that is skipped)."""
        last: Decided | None = None
        for guard in self.guards:
            try:
                value = bool(await evaluate_async(guard.condition, context))
            except TemplateError as exc:
                return Decided(guard.condition, None, f"condition could not be evaluated: {exc}")
            if value is not (guard.branch is Branch.THEN):
                return Decided(guard.condition, value, guard.reason(value))
            last = Decided(guard.condition, value, None)
        if self.own is not None and not guards_only:
            try:
                value = bool(await evaluate_async(self.own, context))
            except TemplateError as exc:
                return Decided(self.own, None, f"condition could not be evaluated: {exc}")
            return Decided(self.own, value, None if value else f"condition is false: {self.own}")
        assert last is not None, "a guarded step has a guard"
        return last

    def when_ran(self) -> tuple[str, bool]:
        """The decision a step that ran was taken on (for a run resumed after it ran)."""
        if self.own is not None:
            return self.own, True
        guard = self.guards[-1]
        return guard.condition, guard.branch is Branch.THEN


@dataclass(frozen=True)
class Block:
    id: str
    condition: str
    where: str  # its path in the spec, e.g. `steps[2] (check)`
    depends_on: tuple[str, ...]
    then: tuple[str, ...]  # ids of the steps (and blocks) directly in each branch
    else_: tuple[str, ...]
    guards: tuple[Guard, ...]  # of the blocks it sits in

    def branch(self, which: Branch) -> tuple[str, ...]:
        return self.then if which is Branch.THEN else self.else_


@dataclass
class Flat:
    """A spec's steps with its blocks flattened, in spec order (a block's steps, then the
    block's own step)."""

    steps: Sequence[Step]
    paths: list[tuple[str, str]] | None = None  # per step (bare, named); None: `steps[i]`
    conditions: dict[str, StepCondition] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def where(self, i: int) -> str:
        """The path of flat step `i` in the spec, naming steps: `steps[2] (check).then[0] (a)`."""
        return f"steps[{i}] ({self.steps[i].id})" if self.paths is None else self.paths[i][1]

    def bare(self, i: int) -> str:
        """The path of flat step `i` by position only: `steps[2].then[0]`."""
        return f"steps[{i}]" if self.paths is None else self.paths[i][0]


def is_block(step: Step) -> bool:
    return step.if_ is not None or step.then is not None or step.else_ is not None


def flatten(spec: WorkflowSpec) -> Flat:
    """The spec's steps with every block turned into guarded steps and the block's step."""
    if not any(is_block(s) for s in spec.steps):
        return Flat(spec.steps)
    flat = Flat([], [])
    _flatten(spec.steps, ("steps", "steps"), (), flat)
    return flat


def _flatten(
    steps: Sequence[Step], prefix: tuple[str, str], guards: tuple[Guard, ...], flat: Flat
) -> list[str]:
    assert isinstance(flat.steps, list) and flat.paths is not None
    ids: list[str] = []
    for j, s in enumerate(steps):
        bare, named = f"{prefix[0]}[{j}]", f"{prefix[1]}[{j}] ({s.id})"
        ids.append(s.id)
        if not is_block(s):
            if guards:
                cond = StepCondition(guards, s.when)
                flat.conditions.setdefault(s.id, cond)
                s = s.model_copy(update={"when": cond.when})
            flat.steps.append(s)
            flat.paths.append((bare, named))
            continue
        flat.problems += _block_problems(s, named)
        condition = s.if_ if s.if_ is not None else "false"
        branches: dict[Branch, list[str]] = {}
        for which, nested in ((Branch.THEN, s.then), (Branch.ELSE, s.else_)):
            inner = (*guards, Guard(s.id, condition, which))
            where = (f"{bare}.{which.value}", f"{named}.{which.value}")
            branches[which] = _flatten(nested or [], where, inner, flat)
        block = Block(
            s.id,
            condition,
            named,
            tuple(s.depends_on),
            tuple(branches[Branch.THEN]),
            tuple(branches[Branch.ELSE]),
            guards,
        )
        flat.blocks.setdefault(s.id, block)
        flat.steps.append(_block_step(s, block))
        flat.paths.append((bare, named))
        if guards:
            flat.conditions.setdefault(s.id, StepCondition(guards, None))
    return ids


def _block_step(s: Step, block: Block) -> Step:
    """The step that stands for the block once its branches are done: a builtin whose
    output is the output of the taken branch's last step. The branch not taken was
    skipped as a whole, so the branch whose last step was not skipped is the one taken
    (if the taken one's last step was skipped by its own `when`, both are null)."""
    # (a last step with the block's own id is a duplicate id, reported as such)
    a = block.then[-1] if block.then and block.then[-1] != block.id else None
    b = block.else_[-1] if block.else_ and block.else_[-1] != block.id else None
    if a and b:
        value: str | None = f"${{{a}.output if {a}.status != 'skipped' else {b}.output}}"
    elif a or b:
        value = f"${{{a or b}.output}}"
    else:
        value = None  # a block without branches: reported, never run
    update: dict[str, Any] = {
        "if_": None,
        "then": None,
        "else_": None,
        "op": BuiltinOp.JSON if value is not None else BuiltinOp.PASS,
        "value": value,
        "trigger": Trigger.ALL_DONE,
        "when": StepCondition(block.guards, None).when if block.guards else None,
    }
    return s.model_copy(update=update)


def _block_problems(s: Step, where: str) -> list[Problem]:
    out: list[Problem] = []
    for name in sorted(s.model_fields_set - BLOCK_FIELDS):
        shown = _ALIASES.get(name, name)
        if name == "when":
            msg = (
                "an if block's condition is its `if`: combine both there "
                "(`if: ${a and b}`), or put `when` on steps inside `then` or `else`"
            )
        else:
            msg = (
                f"an if block has no `{shown}` of its own (it runs the steps of `then` or "
                f"`else`); put `{shown}` on a step inside them"
            )
        out.append(Problem(f"{where}.{shown}", msg))
    if s.if_ is None:
        have = "then" if s.then is not None else "else"
        out.append(
            Problem(
                f"{where}.{have}",
                f"`{have}` belongs to an if block: add `if: <condition>` to this step",
            )
        )
    elif s.then is None:
        out.append(
            Problem(
                f"{where}.if",
                "an if block needs `then`: the steps to run when the condition holds",
            )
        )
    return out


def attach(
    flat: Flat,
    deps: dict[str, list[str]],
    implicit: set[tuple[str, str]],
    reads: Mapping[str, Sequence[str]],
) -> list[Problem]:
    """Wire the blocks into the graph, in place: the steps of a branch that need nothing
    else in it need what the block needs (its `depends_on`, the steps its condition
    `reads`, and what its enclosing block's steps need, if it is one of them); the
    block's step needs the last steps of both branches, instead of the block's own
    `depends_on` (which its steps have)."""
    problems: list[Problem] = []
    under: dict[str, set[str]] = {}  # block -> every step inside it, at any depth
    inside: dict[tuple[str, Branch], set[str]] = {}

    def collect(bid: str) -> set[str]:
        if bid not in under:
            under[bid] = set()  # a block nested in itself (a duplicate id) ends here
            block = flat.blocks[bid]
            for which in Branch:
                got: set[str] = set()
                for m in block.branch(which):
                    got.add(m)
                    if m in flat.blocks and m != bid:
                        got |= collect(m)
                inside[(bid, which)] = got
                under[bid] |= got
        return under[bid]

    for bid in flat.blocks:
        collect(bid)
    needs: dict[str, dict[str, bool]] = {}  # block -> what it needs -> read by its condition
    for bid, block in flat.blocks.items():
        own: dict[str, bool] = {}
        for j, d in enumerate(block.depends_on):
            if d in under[bid]:
                problems.append(_needs_inside(f"{block.where}.depends_on[{j}]", bid, d))
            elif d in deps and d != bid:  # unknown ids and the block itself are reported
                own[d] = False
        for d in reads.get(bid, ()):
            if d in under[bid] or d == bid:
                problems.append(_needs_inside(f"{block.where}.if", bid, d))
            else:
                own.setdefault(d, True)
        needs[bid] = own

    wired: set[str] = set()

    def wire(bid: str, inherited: Mapping[str, bool]) -> None:
        if bid in wired:  # a block nested in itself (a duplicate id): reported already
            return
        wired.add(bid)
        block = flat.blocks[bid]
        mine = {**inherited, **needs[bid]}
        for which in Branch:
            members = inside[(bid, which)]
            for m in block.branch(which):
                if m in flat.blocks and m != bid:
                    nested_root = not (needs[m].keys() & members)
                    wire(m, mine if nested_root else {})
                elif not (set(deps[m]) & members):
                    for d, read in mine.items():
                        if d != m and d not in deps[m]:
                            deps[m].append(d)
                            if read:
                                implicit.add((d, m))
        # the block's step: after the steps of both branches that nothing in them needs
        everything = inside[(bid, Branch.THEN)] | inside[(bid, Branch.ELSE)]
        needed = {d for x in everything for d in deps.get(x, ())}
        last = [block.branch(w)[-1] for w in Branch if block.branch(w)]
        ends = [m for w in Branch for m in block.branch(w) if m not in needed or m in last]
        for d in deps[bid]:
            implicit.discard((d, bid))
        deps[bid] = list(dict.fromkeys(ends))

    for bid, block in flat.blocks.items():
        if not block.guards:
            wire(bid, {})
    return problems


def _needs_inside(where: str, block: str, step: str) -> Problem:
    what = "itself" if step == block else f"{step!r}, a step inside it"
    return Problem(
        where,
        f"block {block!r} cannot need {what}: its steps would wait for their own block; "
        "depend on a step before the block",
    )
