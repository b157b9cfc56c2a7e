"""Incremental majority vote with an exact early-stop test (and an optional approximate one).

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

**Waves** (:meth:`MajorityVote.needed`). When samples are sent in waves, in index order, the
fewest unsent samples worth sending now is the smallest ``k`` for which the vote *could* be
decided once they and the ``F`` in flight arrive, i.e. if all ``F + k`` voted for the leader:
``decided(U - k, next + k)`` on that tally, with ``U`` samples unsent from index ``next``.
Before any vote this is ``ceil(N / 2)`` (``k >= N - k``; the tie goes to the lower indices
already sent). Sending fewer could never stop; each extra sample is one that agreement would
have made unnecessary.

**Confident stop** (approximate, with ``stop_risk > 0``; the shipped config sets 0.05). :meth:`decided` also says yes once
:meth:`MajorityVote.risk`, an estimate of the probability that the pending samples change the
winner, is at most ``stop_risk``. The answer can then differ from the one all N samples would
give (at a rate of about ``stop_risk`` where samples are exchangeable draws); it is not exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

__all__ = ["MajorityVote", "majority"]


class MajorityVote:
    """Running tally; ``leader`` is the current winner under the tie rule. ``stop_risk`` > 0
    adds the approximate confident stop to :meth:`decided` (module docstring)."""

    def __init__(self, stop_risk: float = 0.0) -> None:
        self.counts: dict[str, int] = {}
        self.first_index: dict[str, int] = {}
        self.leader: str | None = None
        self.abstained = 0
        self.stop_risk = stop_risk

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
        can change the winner (or, with ``stop_risk``, probably will not)."""
        if self.final(pending, pending_min_index):
            return True
        return (self.stop_risk > 0 and self.leader is not None
                and self.risk(pending, pending_min_index) <= self.stop_risk)

    def final(self, pending: int, pending_min_index: float = math.inf) -> bool:
        """The exact test: no answers of the ``pending`` samples can change the winner."""
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

    def risk(self, pending: int, pending_min_index: float = math.inf) -> float:
        """An estimate (from above) of the probability that ``pending`` samples change the
        winner, treating samples as exchangeable draws.

        For each other answer ``a`` (count ``c``), and for one new answer (``c = 0``), the
        ``n`` samples received fall in three classes: the leader's ``L``, ``a``'s ``c`` and the
        rest ``n - L - c`` (other answers and abstentions). The pending ones split ``(x, y, z)``
        over them as the Dirichlet-multinomial posterior predictive under a uniform prior,
        ``DirMult(P; L+1, c+1, n-L-c+1)``. The risk is the sum over the rivals (a union
        bound) of ``P(c + y > L + x)``, ``>=`` where ``a`` would win the tie."""
        if self.leader is None:
            return 1.0
        lead, m = self.leader_count, self.first_index[self.leader]
        received = sum(self.counts.values()) + self.abstained
        rivals = [(c, min(self.first_index[a], pending_min_index) < m)
                  for a, c in self.counts.items() if a != self.leader]
        rivals.append((0, pending_min_index < m))
        return min(1.0, sum(_overtake(lead, c, received - lead - c, pending, tie)
                            for c, tie in rivals))

    def needed(self, in_flight: int, unsent: int, next_index: int) -> int:
        """The fewest of the ``unsent`` samples (indices ``next_index`` on) to send now so that
        the vote could be decided when they and the ``in_flight`` ones arrive (module
        docstring). ``decided`` only gets easier as ``k`` grows, so a binary search finds it."""
        lo, hi = 0, unsent  # decided with every sample in (k = unsent, nothing pending)
        while lo < hi:
            k = (lo + hi) // 2
            if self._could_decide(in_flight + k, unsent - k, next_index + k):
                hi = k
            else:
                lo = k + 1
        return lo

    def _could_decide(self, extra: int, pending: int, pending_min_index: int) -> bool:
        """``decided(pending, pending_min_index)`` after ``extra`` more votes for the leader
        (for a new answer when there is none yet; in-flight indices are below
        ``pending_min_index``, so its own index never decides a tie)."""
        if extra == 0:
            return self.decided(pending, pending_min_index)
        trial = MajorityVote(self.stop_risk)
        trial.counts, trial.first_index = dict(self.counts), dict(self.first_index)
        trial.abstained = self.abstained
        leader = self.leader if self.leader is not None else _ANY
        trial.counts[leader] = trial.counts.get(leader, 0) + extra
        trial.first_index.setdefault(leader, pending_min_index - 1)
        trial.leader = leader
        return trial.decided(pending, pending_min_index)


_ANY = "\x00any"  # stands for whichever answer the first votes carry (no extractor yields it)


@lru_cache(maxsize=64)
def _grid(pending: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, z, log multinomial coefficient)`` over every split ``x + y + z = pending``."""
    x, y = np.meshgrid(np.arange(pending + 1), np.arange(pending + 1), indexing="ij")
    keep = x + y <= pending
    x, y = x[keep], y[keep]
    z = pending - x - y
    lf = np.array([math.lgamma(k + 1) for k in range(pending + 1)])
    return x, y, z, lf[pending] - lf[x] - lf[y] - lf[z]


def _overtake(lead: int, rival: int, rest: int, pending: int, tie_to_rival: bool) -> float:
    """``P(rival + y > lead + x)`` (``>=`` with ``tie_to_rival``) for the split ``(x, y, z)`` of
    ``pending`` draws from the Dirichlet-multinomial with parameters
    ``(lead + 1, rival + 1, rest + 1)``."""
    if pending == 0:
        return float(rival > lead or (rival == lead and tie_to_rival))
    x, y, z, log_coef = _grid(pending)
    alphas = (lead + 1.0, rival + 1.0, rest + 1.0)
    total = sum(alphas)
    logp = log_coef + (math.lgamma(total) - math.lgamma(total + pending))
    for alpha, draws in zip(alphas, (x, y, z)):
        rising = np.array([math.lgamma(alpha + k) for k in range(pending + 1)]) - math.lgamma(alpha)
        logp = logp + rising[draws]
    margin = rival + y - lead - x
    lose = margin >= 0 if tie_to_rival else margin > 0
    return float(np.exp(logp[lose]).sum())


def majority(answers: Iterable[str | None]) -> str | None:
    """The winner of a vote where ``answers[i]`` is sample ``i``'s answer (None: no vote)."""
    vote = MajorityVote()
    for i, answer in enumerate(answers):
        vote.add(answer, i)
    return vote.leader
