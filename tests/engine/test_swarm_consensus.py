"""The vote rules on ballots: who wins, and when the rule is not met or the leaders tie."""

from __future__ import annotations

import pytest

from tutti_mcp.engine.modes.swarm.consensus import Ballot, parse_ballot, tally
from tutti_mcp.engine.modes.swarm.spec import VoteRule

OPTIONS = ["a", "b", "c"]


def ballots(*choices: tuple[int, float]) -> list[Ballot]:
    return [Ballot(f"x{i}", c, "", conf) for i, (c, conf) in enumerate(choices)]


@pytest.mark.parametrize(
    ("rule", "cast", "winner", "why"),
    [
        (VoteRule.MAJORITY, [(1, 1), (1, 1), (2, 1)], 1, "option 1 meets the majority rule"),
        (
            VoteRule.MAJORITY,
            [(1, 1), (2, 1), (3, 1)],
            None,
            "a tie between option 1 and option 2 and option 3",
        ),
        (
            VoteRule.MAJORITY,
            [(1, 1), (1, 1), (2, 1), (3, 1)],
            None,
            "option 1 leads but does not meet the majority rule",
        ),
        (
            VoteRule.SUPERMAJORITY,
            [(1, 1), (1, 1), (2, 1)],
            1,
            "option 1 meets the supermajority rule",
        ),
        (
            VoteRule.SUPERMAJORITY,
            [(1, 1), (1, 1), (2, 1), (3, 1)],
            None,
            "option 1 leads but does not meet the supermajority rule",
        ),
        (VoteRule.UNANIMITY, [(2, 1), (2, 1)], 2, "option 2 meets the unanimity rule"),
        (
            VoteRule.UNANIMITY,
            [(2, 1), (2, 1), (1, 0.1)],
            None,
            "option 2 leads but does not meet the unanimity rule",
        ),
        # two votes at low confidence lose to one confident vote
        (VoteRule.WEIGHTED, [(1, 0.2), (1, 0.2), (2, 0.9)], 2, "option 2 meets the weighted rule"),
        (VoteRule.WEIGHTED, [(1, 0.5), (2, 0.5)], None, "a tie between option 1 and option 2"),
    ],
)
def test_each_rule_decides_or_says_why_not(
    rule: VoteRule, cast: list[tuple[int, float]], winner: int | None, why: str
) -> None:
    result = tally(OPTIONS, ballots(*cast), rule)
    assert (result["winner"], result["why"]) == (winner, why)
    assert sum(result["votes"].values()) == len(cast)


def test_no_ballots_decide_nothing() -> None:
    assert tally(OPTIONS, [], VoteRule.MAJORITY)["why"] == "no ballots were cast"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("three", "the answer was not a JSON object"),
        ({"choice": 4}, "choice 4 is not an option number from 1 to 3"),
        ({"choice": True}, "choice True is not an option number from 1 to 3"),
    ],
)
def test_a_ballot_that_names_no_option_is_an_abstention_with_its_reason(
    answer: object, why: str
) -> None:
    assert parse_ballot("x", answer, 3) == why


def test_confidence_is_kept_between_0_and_1() -> None:
    got = parse_ballot("x", {"choice": 1, "rationale": "r", "confidence": 7}, 3)
    assert isinstance(got, Ballot) and got.confidence == 1.0
