"""Consensus: where agents disagree, each casts a ballot (a choice, its rationale, its
confidence) and a rule decides. No winner under the rule, or a tie, goes to the
coordinator, whose reason is recorded with the tally."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tutti_mcp.engine.modes.swarm.spec import VoteRule

MAX_CONFLICTS = 5  # questions put to a vote per swarm
MAX_OPTIONS = 8


@dataclass(frozen=True)
class Ballot:
    agent: str
    choice: int  # 1-based option number
    rationale: str
    confidence: float

    def as_dict(self, options: list[str]) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "choice": self.choice,
            "option": options[self.choice - 1],
            "rationale": self.rationale,
            "confidence": self.confidence,
        }


def norm_position(text: str) -> str:
    """Positions compared as written, but for case, spacing and trailing punctuation."""
    return re.sub(r"\s+", " ", text).strip().rstrip(".!").casefold()


def distinct_positions(positions: list[str]) -> list[str]:
    """The different positions, each as first written, in order of appearance."""
    seen: dict[str, str] = {}
    for p in positions:
        seen.setdefault(norm_position(p), p.strip())
    return list(seen.values())


def parse_ballot(agent: str, output: Any, n_options: int) -> Ballot | str:
    """A ballot from an agent's answer, or why it is not one (the agent abstains)."""
    if not isinstance(output, dict):
        return "the answer was not a JSON object"
    choice = output.get("choice")
    if isinstance(choice, bool) or not isinstance(choice, int) or not 1 <= choice <= n_options:
        return f"choice {choice!r} is not an option number from 1 to {n_options}"
    conf = output.get("confidence", 1.0)
    if isinstance(conf, bool) or not isinstance(conf, int | float):
        conf = 1.0
    return Ballot(agent, choice, str(output.get("rationale", "")), min(max(float(conf), 0.0), 1.0))


def tally(options: list[str], ballots: list[Ballot], rule: VoteRule) -> dict[str, Any]:
    """Votes (and summed confidence) per option, and the winner under `rule`: None when the
    rule is not met or the leaders tie."""
    votes = [0] * len(options)
    weight = [0.0] * len(options)
    for b in ballots:
        votes[b.choice - 1] += 1
        weight[b.choice - 1] += b.confidence
    n, total = len(ballots), sum(weight)
    score = weight if rule is VoteRule.WEIGHTED else [float(v) for v in votes]
    best = max(score, default=0.0)
    leaders = [i for i, s in enumerate(score) if s == best]
    winner: int | None = None
    why: str
    if n == 0:
        why = "no ballots were cast"
    elif len(leaders) > 1:
        why = "a tie between " + " and ".join(f"option {i + 1}" for i in leaders)
    else:
        lead = leaders[0]
        met = _met(rule, score[lead], n, total)
        if met:
            winner = lead
            why = f"option {lead + 1} meets the {rule.value} rule"
        else:
            why = f"option {lead + 1} leads but does not meet the {rule.value} rule"
    return {
        "rule": rule.value,
        "ballots_cast": n,
        "votes": {str(i + 1): v for i, v in enumerate(votes)},
        "confidence": {str(i + 1): round(w, 3) for i, w in enumerate(weight)},
        "winner": None if winner is None else winner + 1,
        "why": why,
    }


def _met(rule: VoteRule, score: float, n: int, total: float) -> bool:
    """Whether the leading option's score (votes, or summed confidence) carries the vote."""
    if rule is VoteRule.UNANIMITY:
        return score == n
    if rule is VoteRule.SUPERMAJORITY:
        return score >= 2 * n / 3
    if rule is VoteRule.WEIGHTED:
        return score > total / 2
    return score > n / 2
