"""Incremental majority vote with an exact early-stop test.

Every sample has an index fixed when it is requested (its position in the fan-out, not its
arrival time); answers are added in any order; ``None`` (no extractable answer) does not vote.

**Tie rule.** The winner is the answer with the highest count; among answers tied at the top
count, the one carried by the lowest sample index wins. The result depends only on the set of
(index, answer) pairs, never on arrival order, so seeded requests give reproducible answers
whatever the latencies.

**Early stop** (:meth:`MajorityVote.decided`). With the leader at count ``L`` and lowest index
``m``, ``P`` samples pending whose lowest index is ``q``: the result is final when no way of
assigning the pending answers changes the winner. An existing answer at count ``c`` can reach
``c + P``: if that exceeds ``L`` the vote is open; if it equals ``L`` it would win the tie when
``min(its lowest index, q) < m``. A new answer can reach ``P``: open if ``P > L``, or
``P == L`` and ``q < m``. Otherwise the leader is final. Stopping therefore never changes the
answer that waiting for every sample would give; with ``q > m`` (typical) this reduces to
``L >= R + P`` (R = runner-up count).
"""

from __future__ import annotations

import math
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
        """Count sample ``index``'s answer."""
        if answer is None:
            self.abstained += 1
            return
        count = self.counts.get(answer, 0) + 1
        self.counts[answer] = count
        self.first_index[answer] = min(self.first_index.get(answer, index), index)
        if self.leader is None or answer == self.leader:
            self.leader = answer
            return
        lead = self.counts[self.leader]
        if count > lead or (count == lead and self.first_index[answer] < self.first_index[self.leader]):
            self.leader = answer

    @property
    def leader_count(self) -> int:
        return self.counts[self.leader] if self.leader is not None else 0

    @property
    def runner_up_count(self) -> int:
        return max((c for a, c in self.counts.items() if a != self.leader), default=0)

    def decided(self, pending: int, pending_min_index: float = math.inf) -> bool:
        """Whether no answers of the ``pending`` samples (lowest index ``pending_min_index``)
        can change the winner."""
        if self.leader is None:
            return pending == 0
        lead, m = self.leader_count, self.first_index[self.leader]
        if pending == 0:
            return True
        if pending > lead or (pending == lead and pending_min_index < m):
            return False
        for answer, count in self.counts.items():
            if answer == self.leader or count + pending < lead:
                continue
            if count + pending > lead or min(self.first_index[answer], pending_min_index) < m:
                return False
        return True


def majority(answers: Iterable[str | None]) -> str | None:
    """The winner of a vote where ``answers[i]`` is sample ``i``'s answer (None: no vote)."""
    vote = MajorityVote()
    for i, answer in enumerate(answers):
        vote.add(answer, i)
    return vote.leader
