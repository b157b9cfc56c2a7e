"""PSST — Prompt Scaling via Sequential Trimming — and PSST+K (Top-K screening).

Arms are (p, k), k = 1..N_max, in every context c. Rounds: before each round, with ``n`` the
most arms alive in a context, the schedule needs ``R = ceil(log2 n)`` more rounds and the budget
affords ``A = floor(left / sum_p N_p)`` at today's cost; the round gets ``left / min(R, A)``
samples (so leftovers carry over and the budget is never exceeded). Every prompt alive in some
context is pulled ``m = floor(round budget / sum_p N_p)`` times at ``N_p`` = its largest alive
scale, all prompts on the same ``m`` train queries (common random numbers). A pull of N_p
responses updates every k <= N_p and every context (``reuse``). At the end of the round each
context keeps its best ``ceil(n_c / f)`` arms by empirical mean, ``f = n^(1/min(R, A))``
(``f ~ 2``, the reference's halving, when the budget affords every round; a larger factor when
it does not). Ranking ties go to more observations, then the smaller N. The answer per context
is the prompt of its best alive arm, served at that prompt's best scale by the chained estimate
(:meth:`ArmStats.chained_mean`: scales compared on the pulls that observed both).

Small budgets (``cap="budget"``): scales above the largest ``K`` for which the budget affords
one pull of every prompt in each of ``ceil(log2(|P| K))`` rounds are dropped at the start.

Pooled (``reuse="pooled"``, the default ``"auto"`` on a majority-vote table with a finite train
set; :mod:`proxy.train.pooled`): every scale of a prompt is estimated from the answers pooled
per query, so a pull costs at most ``pull_n`` samples whatever the scale, and the arms of a
prompt stand or fall together. The same rounds then trim prompts: each context keeps its
``ceil(n_c / f)`` prompts whose best arm is best (revival, ties and the budget split as above;
``cap`` is moot), and serves its last prompt at the scale of that prompt's best arm. A budget
that is spread over many queries at a small ``pull_n`` instead of few queries at the largest
scale removes most of the query-to-query noise that decides between close prompts.

A pull on a new query first draws ``settle`` answers, and the other ``pull_n - settle`` unless
they agree and the query's answers over all the live prompts (pulled on it together) agree
with them at least ``consensus`` of the time (``settle >= pull_n``: every pull draws
``pull_n``). There the plug-in credit is already 0 or 1 at every scale and rarely moves, so the
answers go to new queries and to split pairs instead. The price is an upward bias on easy
pairs (a pair right with probability 0.9 reads as 1 two times in three), which prompts share
where the query is easy for all of them; the consensus keeps a prompt's lucky streak on a
query the others split on from counting as settled. Once the live prompts have answers on every
train query, the rest of a round goes where their credit is least certain (``revisit``,
:meth:`PooledStats.revisits`) instead of round the cycle again.
"""

from __future__ import annotations

from math import ceil, log2

import numpy as np

from proxy.train.base import Learner, QueryMode, is_int, is_number
from proxy.train.env import Env, Reuse
from proxy.train.pooled import PooledStats

__all__ = ["PSST", "PSSTK", "trim"]


def _poolable(env: Env) -> bool:
    """Whether ``env`` can pool answers per (prompt, query): a finite majority-vote train set."""
    return hasattr(env, "pooled_stats") and getattr(env, "n_queries", None) is not None


def _is_flag(value: object) -> bool:
    return isinstance(value, bool) or (is_int(value) and value in (0, 1))


def _schedule(n_alive: np.ndarray, left: int, round_cost: int) -> tuple[int, int]:
    """``(needed, affordable)``: the rounds halving the most alive in a context still needs, and
    the rounds ``left`` samples buy at ``round_cost`` samples for one pull of every live prompt."""
    needed = ceil(log2(n_alive.max())) if n_alive.max() > 1 else 0
    return needed, left // round_cost


def _keep(n_alive: np.ndarray, rounds_left: int) -> np.ndarray:
    """How many each context keeps: ``ceil(n_c / f)``, ``f = max(n)^(1 / rounds_left)``, one in
    the last round."""
    if rounds_left == 1:
        return np.ones_like(n_alive)
    factor = n_alive.max() ** (1.0 / rounds_left)
    return np.maximum(1, np.ceil(n_alive / factor)).astype(int)


def trim(
    mean: np.ndarray, count: np.ndarray, alive: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """Keep the ``keep[c]`` best alive arms of each context (C, P, K).

    Ranking: mean utility desc, then observations desc, then smaller k (cheaper) first.
    Unobserved arms rank last.
    """
    n_ctx, n_p, n_k = alive.shape
    m = np.where(alive & (count[None] > 0), mean, -np.inf).reshape(n_ctx, -1)
    cnt = np.broadcast_to(count, alive.shape).reshape(n_ctx, -1)
    ks = np.broadcast_to(np.arange(n_k), (n_p, n_k)).reshape(-1)
    out = np.zeros_like(alive)
    for c in range(n_ctx):
        order = np.lexsort((ks, -cnt[c], -m[c]))
        chosen = order[alive.reshape(n_ctx, -1)[c][order]][: keep[c]]
        out.reshape(n_ctx, -1)[c, chosen] = True
    return out


class PSST(Learner):
    """Sequential trimming over (prompt, N) arms with shared, reused pulls.

    ``revive``: when trimming context c, arms (p, k <= N_p) of prompts pulled this round are
    candidates again even if c trimmed them earlier: their statistics are exact shared ones,
    updated for free by the pulls the other contexts asked for.
    ``cap="budget"``: drop scales the budget cannot schedule (see the module docstring).
    ``psst(reuse="blocks", queries="iid", revive=False, cap="none")`` is the reference's rule
    set with honest budget accounting. ``reuse="auto"`` pools answers (``"pooled"``, with
    ``pull_n`` answers per pull, ``settle``, ``consensus`` and ``revisit``) where the environment
    offers it, else uses ``"subsets"``.
    """

    name = "psst"
    reuses = ("auto", "pooled", "subsets", "blocks")

    def __init__(
        self, *, revive: bool = True, cap: str = "budget", reuse: Reuse = "auto",
        pull_n: int = 8, settle: int = 4, consensus: float = 0.9, revisit: bool = True,
        queries: QueryMode = "cycle", seed: int | None = None,
    ) -> None:
        super().__init__(reuse=reuse, queries=queries, seed=seed)
        self.revive = revive
        self.cap = cap
        self.pull_n = pull_n
        self.settle = settle
        self.consensus = consensus
        self.revisit = revisit

    def validate(self, env: Env | None = None) -> None:
        super().validate(env)
        self._validate_trimming()
        self._require(is_int(self.pull_n) and self.pull_n >= 1, "pull_n", "an integer >= 1")
        self._require(is_int(self.settle) and self.settle >= 1, "settle", "an integer >= 1")
        self._require(is_number(self.consensus) and 0 <= self.consensus <= 1, "consensus",
                      "a fraction in [0, 1]")
        self._require(_is_flag(self.revisit), "revisit", "true or false (or 1 or 0)")
        if env is not None and self.reuse == "pooled":
            self._require(_poolable(env), "reuse",
                          "'subsets' or 'blocks' on this environment (it cannot pool answers)")

    def _validate_trimming(self) -> None:
        self._require(_is_flag(self.revive), "revive", "true or false (or 1 or 0)")
        self._require(self.cap in ("budget", "none"), "cap", "'budget' or 'none'")

    def _resolve_reuse(self, env: Env) -> str:
        if self.reuse == "auto":
            return "pooled" if _poolable(env) else "subsets"
        return self.reuse

    def _run(self) -> np.ndarray:
        env = self._env
        if self.reuse_ == "pooled":
            self.stats_ = env.pooled_stats()  # type: ignore[attr-defined]
            alive = self._trim_prompts(self.left)
            return np.repeat(alive[:, :, None], env.n_max, axis=2)
        alive = np.ones((len(env.contexts), env.n_prompts, env.n_max), dtype=bool)
        return self._trim_rounds(alive, self.left)

    def _trim_prompts(self, budget: int) -> np.ndarray:
        """The rounds of the module docstring over prompts on pooled estimates; alive (C, P)."""
        env = self._env
        alive = np.ones((len(env.contexts), env.n_prompts), dtype=bool)
        n = max(1, min(int(self.pull_n), budget // env.n_prompts))
        stop = self.samples_ + budget
        while True:
            live = np.nonzero(alive.any(axis=0))[0]
            n_alive = alive.sum(axis=1)
            needed, affordable = _schedule(n_alive, stop - self.samples_, live.size * n)
            if needed == 0 or affordable == 0:
                return alive
            rounds_left = min(needed, affordable)
            self._pull_pooled(live, n, (stop - self.samples_) // rounds_left)
            keep = _keep(n_alive, rounds_left)
            candidates = alive.copy()
            if self.revive:
                candidates[:, live] = True
            best = self.stats_.mean().max(axis=2, keepdims=True)  # (C, P, 1): each best arm
            alive = trim(best, self.stats_.count[:, :1], candidates[:, :, None], keep)[:, :, 0]

    def _pull_pooled(self, live: np.ndarray, n: int, budget: int) -> None:
        """Spend at most ``budget`` samples on the live prompts, all on common queries: batches
        of the queries some of them have not answered (:meth:`_pull_settling`, each batch
        affordable were every pull extended), then revisits where the credit is least certain
        (:meth:`PooledStats.revisits`; with ``revisit=False`` the cycle), ``n`` answers a pull."""
        stats: PooledStats = self.stats_  # type: ignore[assignment]  # the pooled rounds' own
        stop = self.samples_ + budget
        per_query = live.size * n
        unseen = stats.unseen(live)
        while unseen.size and stop - self.samples_ >= per_query:
            batch = self._rng.permutation(unseen)[: (stop - self.samples_) // per_query]
            self._pull_settling(stats, live, n, batch)
            unseen = stats.unseen(live)
        m = (stop - self.samples_) // per_query
        if m == 0:
            return
        if not self.revisit:
            self._pull_crn(live, np.full(live.size, n), m)
            return
        self._pull(np.repeat(live, m), n, np.tile(stats.revisits(live, n, m), live.size))

    def _pull_settling(
        self, stats: PooledStats, live: np.ndarray, n: int, queries: np.ndarray
    ) -> None:
        """Pull every live prompt on every query with ``settle`` answers, then with ``n -
        settle`` more every (prompt, query) but those whose answers agree and are at least
        ``consensus`` of the query's answers over all the live prompts."""
        first = min(int(self.settle), n)
        at = np.tile(np.arange(queries.size), live.size)  # each pair's index into queries
        prompts, pair_queries = np.repeat(live, queries.size), queries[at]
        self._pull(prompts, first, pair_queries)
        if first == n:
            return
        counts = stats.counts[prompts, pair_queries]  # (pairs, categories)
        on_query = stats.counts[live[:, None], queries[None, :]].sum(axis=0)  # (queries, categories)
        share = on_query[at, counts.argmax(axis=1)] / on_query[at].sum(axis=1)
        settled = (counts.max(axis=1) == counts.sum(axis=1)) & (share >= self.consensus)
        self._pull(prompts[~settled], n - first, pair_queries[~settled])

    def _choose(self, alive: np.ndarray | None) -> np.ndarray:
        actions = super()._choose(alive)
        chained = self.stats_.chained_mean()
        for c, p in enumerate(actions[:, 0]):
            row = chained[c, p]
            if np.isfinite(row).any():  # first maximum: ties go to the smaller N
                actions[c, 1] = int(np.argmax(np.where(np.isfinite(row), row, -np.inf))) + 1
        return actions

    def _trim_rounds(self, alive: np.ndarray, budget: int) -> np.ndarray:
        alive = alive.copy()
        n_live_p = int(alive.any(axis=(0, 2)).sum())
        n_max = alive.shape[2]
        cap = max(1, min(n_max, budget // max(n_live_p, 1)))
        if self.cap == "budget":  # largest scale whose whole halving schedule the budget affords
            n_arms = int(alive.sum(axis=(1, 2)).max())
            while cap > 1 and budget < ceil(log2(max(2, n_arms * cap // n_max))) * n_live_p * cap:
                cap -= 1
        alive[:, :, cap:] = False
        stop = self.samples_ + budget
        first = True
        while True:
            live = np.nonzero(alive.any(axis=(0, 2)))[0]
            top = np.array([np.nonzero(alive[:, p].any(axis=0))[0].max() + 1 for p in live])
            n_alive = alive.sum(axis=(1, 2))
            needed, affordable = _schedule(n_alive, stop - self.samples_, int(top.sum()))
            if needed == 0 or (affordable == 0 and not first):
                break
            rounds_left = max(1, min(needed, affordable))
            m = (stop - self.samples_) // rounds_left // int(top.sum())
            if m > 0:
                self._pull_crn(live, top, m)
            first = False
            keep = _keep(n_alive, rounds_left)
            candidates = alive
            if self.revive:
                fresh = np.zeros(alive.shape[1:], dtype=bool)
                for p, n in zip(live, top):
                    fresh[p, :n] = True
                candidates = alive | fresh[None]
            alive = trim(self.stats_.mean(), self.stats_.count, candidates, keep)
        return alive


class PSSTK(PSST):
    """PSST+K: spend ``burn_in`` of the budget on N=1 pulls of every prompt (round robin,
    common queries), keep each context's ``k`` best prompts with all their scales, reset the
    statistics and run PSST on the rest."""

    name = "psst-k"
    reuses = ("subsets", "blocks")

    def __init__(
        self, *, k: int = 4, burn_in: float = 0.2, revive: bool = True, cap: str = "budget",
        reuse: Reuse = "subsets", queries: QueryMode = "cycle", seed: int | None = None,
    ) -> None:
        Learner.__init__(self, reuse=reuse, queries=queries, seed=seed)  # no pooling: no pull_n
        self.revive = revive
        self.cap = cap
        self.k = k
        self.burn_in = burn_in

    def validate(self, env: Env | None = None) -> None:
        Learner.validate(self, env)
        self._validate_trimming()
        self._require(is_int(self.k) and self.k >= 1, "k", "an integer >= 1")
        if env is not None:
            self._require(self.k <= env.n_prompts, "k", f"at most the number of prompts ({env.n_prompts})")
        self._require(is_number(self.burn_in) and 0 < self.burn_in < 1, "burn_in", "a fraction in (0, 1)")

    def min_budget(self, env: Env) -> int:
        return 2 * int(env.n_prompts)

    def _run(self) -> np.ndarray:
        env = self._env
        n_ctx, n_p, n_k = len(env.contexts), env.n_prompts, env.n_max
        m = max(1, int(self._budget * self.burn_in) // n_p)
        self._pull_crn(np.arange(n_p), np.ones(n_p, dtype=np.int64), m)
        mean1 = self.stats_.mean()[:, :, 0]
        best = np.argsort(-mean1, axis=1, kind="stable")[:, : self.k]
        alive = np.zeros((n_ctx, n_p, n_k), dtype=bool)
        for c in range(n_ctx):
            alive[c, best[c]] = True
        self.stats_.__init__(n_ctx, n_p, n_k, env.n_objectives)  # reset the statistics
        return self._trim_rounds(alive, self.left)
