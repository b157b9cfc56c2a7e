"""Incremental majority vote with an exact early-stop test.

Answers are added in arrival order; ``None`` (no extractable answer) does not vote.

**Tie rule.** The winner is the answer with the highest count; among answers tied at the top
count, the one that *reached* that count first (in arrival order) wins. Incrementally: an answer
takes the lead only when its count becomes strictly greater than the leader's.

**Early stop.** With leader count ``L``, the best other count ``R`` and ``P`` samples still
pending, the result is final when ``L >= R + P`` (and ``L > 0``): any other answer can at most
reach ``R + P <= L``, and if it ties ``L`` it reaches that count after the leader did, so the tie
rule keeps the leader. A brand-new answer can reach at most ``P <= R + P``. Stopping therefore
never changes the answer that the full vote over the same arrival order would give.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MajorityVote", "majority"]


class MajorityVote:
    """Running tally; ``leader`` is the current winner under the tie rule."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first_index: dict[str, int] = {}
        self.leader: str | None = None
        self.abstained = 0

    def add(self, answer: str | None, index: int) -> None:
        """Count one sample's answer; ``index`` identifies the sample carrying it."""
        if answer is None:
            self.abstained += 1
            return
        count = self.counts.get(answer, 0) + 1
        self.counts[answer] = count
        self.first_index.setdefault(answer, index)
        if self.leader is None or count > self.counts[self.leader]:
            self.leader = answer

    @property
    def leader_count(self) -> int:
        return self.counts[self.leader] if self.leader is not None else 0

    @property
    def runner_up_count(self) -> int:
        return max((c for a, c in self.counts.items() if a != self.leader), default=0)

    def decided(self, pending: int) -> bool:
        """Whether no outcome of ``pending`` further samples can change the winner."""
        lead = self.leader_count
        return lead > 0 and lead >= self.runner_up_count + pending


def majority(answers: Iterable[str | None]) -> str | None:
    """The winner of a vote over ``answers`` in order (None when nobody voted)."""
    vote = MajorityVote()
    for i, answer in enumerate(answers):
        vote.add(answer, i)
    return vote.leader
