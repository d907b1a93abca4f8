"""The swarm's conductor: from the turns taken so far, the next turns to add, or the end.

It keeps no state of its own. Each time a batch of turns has settled it reads them all
again (their scopes say what each was; their records, what became of it) and works out
what comes next, so a resumed swarm goes on exactly where it was. Each new turn's scope
holds everything its prompt needs (except the task, rendered again from the run), so a
turn does what was decided when it was added.

Turns fill *slots* (the plan, subtask 3, alice's draft of round 2, ...). A slot's turn
that fails is recovered (engine.modes.swarm.recovery): another turn in the same slot, or
the slot is given up (the result is partial).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tutti_mcp.engine.errors import StepError
from tutti_mcp.engine.modes.swarm import answers as A
from tutti_mcp.engine.modes.swarm import turns as T
from tutti_mcp.engine.modes.swarm.compile import CALLER
from tutti_mcp.engine.modes.swarm.consensus import (
    Ballot,
    distinct_positions,
    parse_ballot,
    tally,
)
from tutti_mcp.engine.modes.swarm.recovery import decide
from tutti_mcp.engine.modes.swarm.spec import ConflictResolution, SwarmSpec, Topology
from tutti_mcp.memory.runs.records import StepStatus


@dataclass(frozen=True)
class Turn:
    """A turn taken (or under way), as the conductor reads it."""

    id: str
    scope: dict[str, Any]
    status: StepStatus
    output: Any
    error: str | None


@dataclass(frozen=True)
class NewTurn:
    id: str
    scope: dict[str, Any]


@dataclass
class Finished:
    result: Any
    missing: list[str]
    consensus: list[dict[str, Any]]
    recovery: list[dict[str, Any]]
    notes: list[str]


class _Pending(Exception):
    def __init__(self, turns: list[NewTurn]) -> None:
        self.turns = turns


@dataclass
class _Slot:
    ok: Turn | None  # the turn that filled it
    lost: str | None = None  # why it was given up


@dataclass
class Conductor:
    sid: str
    spec: SwarmSpec
    taken: list[Turn]
    slots: dict[str, list[Turn]] = field(init=False)
    missing: list[str] = field(default_factory=list)
    consensus: list[dict[str, Any]] = field(default_factory=list)
    recovery: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slots = {}
        for t in self.taken:
            self.slots.setdefault(t.scope["slot"], []).append(t)
            if "recovery" in t.scope:
                self.recovery.append(t.scope["recovery"])
        self.down = {t.scope["agent"] for t in self.taken if t.status is StepStatus.FAILED}
        self.load = Counter(t.scope["agent"] for t in self.taken)

    # -- the entry -----------------------------------------------------------------------------
    def next(self) -> list[NewTurn] | Finished:
        try:
            result = {
                Topology.HIERARCHICAL: self._hierarchical,
                Topology.MESH: self._mesh,
                Topology.PIPELINE: self._pipeline,
                Topology.STAR: self._star,
            }[self.spec.topology]()
        except _Pending as p:
            return p.turns
        return Finished(result, self.missing, self.consensus, self.recovery, self.notes)

    # -- topologies ----------------------------------------------------------------------------
    def _hierarchical(self) -> Any:
        lead = self.spec.lead
        plan = self._one("plan", lead, "plan", prompt=T.plan_prompt(self.spec))
        subtasks = self._subtasks(plan)
        sharing = self.spec.coordination.state_sharing
        work = self._all(
            [
                (
                    f"work#{i}",
                    st["agent"],
                    "work",
                    {"prompt": T.work_prompt(st, sharing), "subtask": st},
                )
                for i, st in enumerate(subtasks, 1)
            ]
        )
        results, missing = [], []
        for (slot, got), st in zip(work.items(), subtasks, strict=True):
            if got.ok is not None:
                results.append((got.ok.scope["agent"], st["task"], A.text(got.ok.output)))
            else:
                missing.append(f"{slot} ({st['agent']}: {st['task'][:80]})")
        self.missing += missing
        synth = A.obj(
            self._one(
                "synthesis",
                lead,
                "synthesis",
                prompt=T.synthesis_prompt(T.results_block(results), missing),
            )
        )
        result = str(synth.get("result", "")) if synth else ""
        conflicts = A.conflicts(synth.get("conflicts") if synth else None)
        if not conflicts:
            return result
        voters = [r[0] for r in results if not r[0].startswith("~")]
        decisions = self._resolve(conflicts, voters)
        prompt = T.final_prompt(result, decisions)
        return A.text(self._one("final", lead, "final", prompt=prompt))

    def _mesh(self) -> Any:
        live = list(self.spec.agents)
        drafts: dict[str, dict[str, Any]] = {}
        for k in range(1, self.spec.max_rounds + 1):
            board = "" if k == 1 else A.board(drafts, k - 1)
            got = self._all(
                [
                    (
                        f"draft#{k}@{a}",
                        a,
                        "draft",
                        {"prompt": T.draft_prompt(k), "board": board, "round": k},
                    )
                    for a in live
                ]
            )
            drafts = {}
            for a, slot in zip(live, got.values(), strict=True):
                obj = A.obj(slot.ok.output) if slot.ok is not None else None
                if obj is not None and "answer" in obj:
                    drafts[a] = obj
            live = [a for a in live if a in drafts]
            if not drafts:
                raise StepError("every agent of the mesh failed its turn", retryable=False)
            positions = distinct_positions([str(d.get("position", "")) for d in drafts.values()])
            if len(positions) == 1:
                self.notes.append(f"the agents agreed in round {k}: {positions[0]}")
                return drafts[live[0]]["answer"]
        self.notes.append(f"no agreement after {self.spec.max_rounds} rounds")
        positions = distinct_positions([str(d.get("position", "")) for d in drafts.values()])
        question = "which position the swarm's answer takes"
        decided = self._resolve([{"question": question, "options": positions}], live)
        winner = self.consensus[-1]["decision"]
        holder = next(a for a in live if A.same(drafts[a].get("position"), winner))
        self.notes.append(f"answer: {holder}'s draft ({decided[0]})")
        return drafts[holder]["answer"]

    def _pipeline(self) -> Any:
        previous: tuple[str, str] | None = None
        for i, agent in enumerate(self.spec.agents, 1):
            prompt = T.refine_prompt(previous)
            got = self._all([(f"refine#{i}", agent, "refine", {"prompt": prompt})])
            slot = got[f"refine#{i}"]
            if slot.ok is not None:
                previous = (slot.ok.scope["agent"], A.text(slot.ok.output))
            else:
                self.missing.append(f"refine#{i} ({agent})")
        if previous is None:
            raise StepError("every agent of the pipeline failed its turn", retryable=False)
        return previous[1]

    def _star(self) -> Any:
        hub, spokes = self.spec.lead, self.spec.workers
        got = self._all(
            [(f"answer@{a}", a, "answer", {"prompt": T.answer_prompt()}) for a in spokes]
        )
        answers: dict[str, dict[str, Any]] = {}
        for a, slot in zip(spokes, got.values(), strict=True):
            obj = A.obj(slot.ok.output) if slot.ok is not None else None
            if obj is not None and "answer" in obj:
                answers[a] = obj
            else:
                self.missing.append(f"{a}'s answer")
        board = T.results_block([(a, "the task", str(o["answer"])) for a, o in answers.items()])
        decision = None
        positions = distinct_positions([str(o.get("position", "")) for o in answers.values()])
        if len(positions) > 1:
            q = "which position the swarm's answer takes"
            decision = self._resolve([{"question": q, "options": positions}], list(answers))[0]
        prompt = T.aggregate_prompt(board, decision, self.missing)
        return A.text(self._one("aggregate", hub, "aggregate", prompt=prompt))

    # -- consensus -----------------------------------------------------------------------------
    def _resolve(self, conflicts: list[dict[str, Any]], voters: list[str]) -> list[str]:
        """Each conflict decided by ballots (consensus, vote) and the coordinator where they do
        not decide, or by the coordinator alone; recorded in `consensus`. Returns a line per
        conflict saying what was decided."""
        how = self.spec.coordination.conflict_resolution
        rule = self.spec.coordination.vote_rule
        ballots: dict[int, list[Ballot]] = {}
        abstained: dict[int, list[str]] = {}
        if how is not ConflictResolution.COORDINATOR and voters:
            asks: list[tuple[str, str, str, dict[str, Any]]] = [
                (
                    f"ballot#{c}@{a}",
                    a,
                    "ballot",
                    {"prompt": T.ballot_prompt(q["question"], q["options"]), "conflict": c},
                )
                for c, q in enumerate(conflicts, 1)
                for a in voters
            ]
            got = self._all(asks)
            for (_slot_id, agent, _, extra), slot in zip(asks, got.values(), strict=True):
                c = extra["conflict"]
                n = len(conflicts[c - 1]["options"])
                parsed = (
                    parse_ballot(slot.ok.scope["agent"], A.obj(slot.ok.output), n)
                    if slot.ok is not None
                    else f"no ballot: {slot.lost}"
                )
                if isinstance(parsed, Ballot):
                    ballots.setdefault(c, []).append(parsed)
                else:
                    abstained.setdefault(c, []).append(f"{agent}: {parsed}")
        lines = []
        undecided = []
        records = []
        for c, q in enumerate(conflicts, 1):
            options = q["options"]
            cast = ballots.get(c, [])
            record: dict[str, Any] = {"question": q["question"], "options": options}
            if how is not ConflictResolution.COORDINATOR:
                result = tally(options, cast, rule)
                record |= {
                    "ballots": [b.as_dict(options) for b in cast],
                    "abstained": abstained.get(c, []),
                    "tally": result,
                }
                if result["winner"] is not None:
                    record |= {"decision": options[result["winner"] - 1], "decided_by": "vote"}
                else:
                    undecided.append((c, result["why"]))
            else:
                undecided.append((c, None))
            records.append(record)
        if undecided:
            lead = self.spec.lead
            asks = [
                (
                    f"decide#{c}",
                    lead,
                    "decide",
                    {
                        "prompt": T.decide_prompt(
                            conflicts[c - 1]["question"], conflicts[c - 1]["options"], why
                        ),
                        "conflict": c,
                    },
                )
                for c, why in undecided
            ]
            got = self._all(asks)
            for (c, why), slot in zip(undecided, got.values(), strict=True):
                options = conflicts[c - 1]["options"]
                assert slot.ok is not None  # the coordinator's turn is escalated, never given up
                obj = A.obj(slot.ok.output) or {}
                choice = obj.get("choice")
                if isinstance(choice, bool) or not isinstance(choice, int):
                    choice = 0
                if not 1 <= choice <= len(options):
                    choice = 1
                    reason = f"the coordinator named no option ({obj.get('choice')!r}): option 1"
                else:
                    reason = str(obj.get("reason", ""))
                records[c - 1] |= {
                    "decision": options[choice - 1],
                    "decided_by": "coordinator",
                    "coordinator": slot.ok.scope["agent"],
                    "reason": reason if why is None else f"{why}; {reason}",
                }
        for rec in records:
            lines.append(f"{rec['question']}: {rec['decision']} (by {rec['decided_by']})")
        self.consensus += records
        return lines

    # -- slots ---------------------------------------------------------------------------------
    def _one(self, slot: str, agent: str, phase: str, **extra: Any) -> Any:
        got = self._all([(slot, agent, phase, extra)])[slot]
        if got.ok is None:
            raise StepError(f"the swarm cannot go on: {got.lost}", retryable=False)
        return got.ok.output

    def _all(self, asks: list[tuple[str, str, str, dict[str, Any]]]) -> dict[str, _Slot]:
        """The slots of one phase, each filled or given up; else the turns to add first (all
        of the phase's at once, so they run in parallel)."""
        out: dict[str, _Slot] = {}
        new: list[NewTurn] = []
        for slot, agent, phase, extra in asks:
            taken = self.slots.get(slot)
            got: NewTurn | _Slot
            if not taken and agent in self.down:  # it failed an earlier turn: not asked again
                why = "it failed an earlier turn"
                got = self._recover(slot, agent, agent, slot, why, phase, extra)
            elif not taken:
                got = self._turn(slot, agent, phase, extra)
            elif taken[-1].status.has_output:
                got = _Slot(taken[-1])
            elif taken[-1].status is StepStatus.FAILED:
                last = taken[-1]
                who, stand_in = last.scope["agent"], last.scope.get("as", last.scope["agent"])
                got = self._recover(slot, who, stand_in, last.id, last.error, phase, extra)
            else:
                last = taken[-1]
                raise StepError(
                    f"turn {last.id} is {last.status.value}, not settled", retryable=False
                )
            if isinstance(got, NewTurn):
                new.append(got)
            else:
                out[slot] = got
        if new:
            raise _Pending(new)
        return out

    def _recover(
        self,
        slot: str,
        agent: str,
        stand_in: str,
        turn: str,
        error: str | None,
        phase: str,
        extra: dict[str, Any],
    ) -> NewTurn | _Slot:
        """Slot `slot`, which `agent` (doing `stand_in`'s part) could not fill: another
        turn, or the slot given up."""
        needs = []
        st = extra.get("subtask")
        if isinstance(st, dict) and st.get("capability"):
            needs = [str(st["capability"])]
        elif agent in self.spec.agents and phase == "refine":
            needs = list(self.spec.agents[agent].capabilities)
        d = decide(self.spec, agent, phase, needs, self.down, self.load)
        record = d.record(stand_in, turn, error)
        if d.action == "degrade":
            self.recovery.append(record)
            return _Slot(None, f"{turn}: {error or 'failed'} ({d.reason})")
        if agent == CALLER:
            raise StepError(
                f"turn {turn} was escalated to the caller, who could not do it: {error}",
                retryable=False,
            )
        to = CALLER if d.action == "escalate" else d.to
        assert to is not None
        scope = {**extra, "as": stand_in, "recovery": record}
        if d.action == "escalate":
            scope["prompt"] = extra.get("prompt", "") + T.escalation_note(
                stand_in, error or "failed"
            )
        return self._turn(slot, to, phase, scope)

    def _turn(self, slot: str, agent: str, phase: str, extra: dict[str, Any]) -> NewTurn:
        stand_in = extra.get("as")
        who = "caller" if agent == CALLER else agent
        label = f"{who}:{slot.split('@')[0]}"
        if stand_in is not None and stand_in != agent:
            label += f"~{stand_in}"
        scope = {
            "slot": slot,
            "agent": agent,
            "phase": phase,
            "role": T.role_text(self.spec, agent, phase, stand_in if stand_in != agent else None),
            **extra,
        }
        self.load[agent] += 1
        return NewTurn(f"{self.sid}[{label}]", scope)

    def _subtasks(self, plan: Any) -> list[dict[str, Any]]:
        """The coordinator's plan checked against the roster: a subtask for an agent that is
        not a specialist is reassigned, and the reason recorded."""
        workers = self.spec.workers
        obj = A.obj(plan)
        raw = obj.get("subtasks") if obj else None
        if not isinstance(raw, list) or not raw:
            self.notes.append(
                "the coordinator's plan held no subtasks: every specialist gets the whole task"
            )
            return [
                {"agent": w, "task": "the swarm's task (above)", "context": ""} for w in workers
            ]
        out: list[dict[str, Any]] = []
        for i, st in enumerate(raw[: self.spec.max_subtasks], 1):
            if not isinstance(st, dict) or not str(st.get("task", "")).strip():
                self.notes.append(f"subtask {i} of the plan has no task: left out")
                continue
            sub = {k: str(st[k]) for k in ("agent", "task", "context", "capability") if st.get(k)}
            name = sub.get("agent", "")
            if name not in workers:
                to = A.reassign(self.spec, sub.get("capability"), Counter(s["agent"] for s in out))
                sub["reassigned"] = f"{name!r} is not a specialist of this swarm: given to {to}"
                self.notes.append(f"subtask {i}: {sub['reassigned']}")
                sub["agent"] = to
            out.append(sub)
        if len(raw) > self.spec.max_subtasks:
            self.notes.append(
                f"the plan had {len(raw)} subtasks; the first {self.spec.max_subtasks} "
                "(max_subtasks) were given out"
            )
        return out
