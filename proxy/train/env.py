"""Replay environments the learners pull from, and the majority-voting table env.

An environment exposes ``n_prompts``, ``n_max``, ``n_queries`` (the finite train set, or
``None`` for an endless stream), ``contexts`` and ``n_objectives``, and

* ``pull(prompt, n, rng, query=None) -> Pulls``: ``n`` responses of one train query;
* ``pull_many(prompts, n, rng, queries=None) -> Pulls``: one pull per entry of ``prompts``;
  passing the same ``queries`` to several prompts gives common random numbers;
* ``observe(pulls, kmax, reuse) -> Observation``: what the pulls say about every scale
  ``k <= kmax`` in every context (``reuse="subsets"``: exact mean over all k-subsets, one
  observation per pull; ``reuse="blocks"``: the reference's floor(n/k) disjoint blocks).

A majority-vote table with a finite train set also offers ``answer_counts(pulls)`` and
``pooled_stats()``, for learners that pool answers per (prompt, query) (``reuse="pooled"``,
:mod:`proxy.train.pooled`).

Utility of arm (p, k) in context c: ``U = E[w_c . aggregate_k] - lambda_c * k * cost``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from proxy.train.errors import TableError
from proxy.train.subsets import block_majority, subset_majority

if TYPE_CHECKING:  # pooled.py builds on stats.py, which imports this module
    from proxy.train.pooled import PooledStats

__all__ = [
    "MATH_CONTEXTS",
    "Context",
    "Env",
    "Observation",
    "Pulls",
    "ReplayMajorityEnv",
    "Reuse",
]

Reuse = Literal["subsets", "blocks", "pooled", "auto"]
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip


@dataclass(frozen=True)
class Context:
    """A task x preference profile: objective weights, cost coefficient, probability weight."""

    name: str
    lam: float
    weights: tuple[float, ...] = (1.0,)
    share: float = 1.0


MATH_CONTEXTS = (Context("low", 0.0), Context("mid", 0.2), Context("high", 1.0))


@dataclass(frozen=True)
class Pulls:
    """``len(prompts)`` pulls of ``n`` responses: ``samples`` (M, n) indices into outcomes."""

    prompts: np.ndarray
    queries: np.ndarray
    samples: np.ndarray

    @property
    def n(self) -> int:
        return int(self.samples.shape[1])


@dataclass(frozen=True)
class Observation:
    """Per pull m and scale k = 1..K: sums over its observations, for every context c.

    ``util`` / ``util_sq`` (C, M, K), ``objectives`` (C, M, K, D), ``cost`` (M, K) summed total
    cost of k samples, ``count`` (M, K) number of observations (1, or the number of blocks).
    """

    util: np.ndarray
    util_sq: np.ndarray
    objectives: np.ndarray
    cost: np.ndarray
    count: np.ndarray


class Env(Protocol):
    n_prompts: int
    n_max: int
    n_queries: int | None
    contexts: tuple[Context, ...]
    n_objectives: int

    def pull_many(
        self, prompts: np.ndarray, n: int, rng: np.random.Generator, queries: np.ndarray | None = None
    ) -> Pulls: ...

    def observe(self, pulls: Pulls, kmax: int, reuse: Reuse) -> Observation: ...


def _require(data: dict[str, np.ndarray], name: str, kind: str, ndim: int) -> np.ndarray:
    if name not in data:
        raise TableError(f"array {name!r} is missing")
    arr = np.asarray(data[name])
    if arr.dtype.kind not in kind:
        raise TableError(f"array {name!r} has dtype {arr.dtype}, expected kind {kind!r}")
    if arr.ndim != ndim:
        raise TableError(f"array {name!r} has shape {arr.shape}, expected {ndim} dimensions")
    return arr


def _check_split(data: dict[str, np.ndarray], split: str, n_prompts: int) -> tuple[np.ndarray, np.ndarray]:
    probs = _require(data, f"{split}_probs", "f", 3).astype(float)
    answers = _require(data, f"{split}_answers", "iu", 1).astype(np.int64)
    p, x, c = probs.shape
    if p != n_prompts:
        raise TableError(f"array '{split}_probs' has {p} prompts but 'cost_per_prompt' has {n_prompts}")
    if x == 0 or c < 2:
        raise TableError(f"array '{split}_probs' has shape {probs.shape}, expected ({n_prompts}, X>0, C>=2)")
    if answers.shape != (x,):
        raise TableError(f"array '{split}_answers' has shape {answers.shape}, expected ({x},)")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise TableError(f"array '{split}_probs' has negative or non-finite entries")
    if not np.allclose(probs.sum(axis=2), 1.0, atol=1e-6):
        raise TableError(f"array '{split}_probs' has rows that do not sum to 1")
    if (answers < 0).any() or (answers >= c).any():
        raise TableError(f"array '{split}_answers' has entries outside 0..{c - 1}")
    return probs / probs.sum(axis=2, keepdims=True), answers


class ReplayMajorityEnv:
    """Majority voting replayed from a response table (see ``/work/shared/data/README.md``).

    A pull draws a train query (uniformly, or the one given) and ``n`` i.i.d. answers from
    ``train_probs[p, x]``; the test split is kept for exact evaluation only.
    """

    n_objectives = 1

    def __init__(
        self,
        train_probs: np.ndarray,
        train_answers: np.ndarray,
        test_probs: np.ndarray,
        test_answers: np.ndarray,
        cost_per_prompt: np.ndarray,
        *,
        n_max: int = 32,
        contexts: tuple[Context, ...] = MATH_CONTEXTS,
    ) -> None:
        data = {
            "train_probs": train_probs, "train_answers": train_answers,
            "test_probs": test_probs, "test_answers": test_answers,
            "cost_per_prompt": cost_per_prompt,
        }
        cost = _require(data, "cost_per_prompt", "f", 1).astype(float)
        if cost.size == 0 or not np.isfinite(cost).all() or (cost < 0).any():
            raise TableError("array 'cost_per_prompt' must be non-empty, finite and >= 0")
        self.cost_per_prompt = cost
        self.n_prompts = int(cost.size)
        self.train_probs, self.train_answers = _check_split(data, "train", self.n_prompts)
        self.test_probs, self.test_answers = _check_split(data, "test", self.n_prompts)
        if self.test_probs.shape[2] != self.train_probs.shape[2]:
            raise TableError("arrays 'train_probs' and 'test_probs' differ in the number of categories")
        if n_max < 1:
            raise TableError("n_max must be >= 1")
        self.n_max = int(n_max)
        self.n_queries: int | None = int(self.train_answers.size)
        self.n_categories = int(self.train_probs.shape[2])
        self.contexts = tuple(contexts)
        self._cdf = np.cumsum(self.train_probs, axis=2)
        self._lams = np.array([c.lam for c in self.contexts])

    @classmethod
    def from_npz(cls, path: str | Path, **kwargs: object) -> ReplayMajorityEnv:
        """Load and validate a table; any problem is a :class:`TableError`."""
        path = Path(path)
        if not path.is_file():
            raise TableError(f"table file not found: {path}")
        try:
            with path.open("rb") as fh:  # ours to close, whatever np.load makes of it
                head = fh.read(len(np.lib.format.MAGIC_PREFIX))
                if not head.startswith(_ZIP_MAGIC):
                    what = ("a single .npy array" if head == np.lib.format.MAGIC_PREFIX
                            else "empty" if not head else "not a zip file")
                    raise TableError(f"{path} is not an .npz archive ({what}): expected named arrays "
                                     "saved with numpy.savez")
                fh.seek(0)
                with np.load(fh, allow_pickle=False) as npz:
                    data = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise TableError(f"cannot read {path} as an .npz archive: {exc}") from None
        names = ("train_probs", "train_answers", "test_probs", "test_answers", "cost_per_prompt")
        for name in names:
            if name not in data:
                raise TableError(f"array {name!r} is missing from {path}")
        return cls(*(data[n] for n in names), **kwargs)  # type: ignore[arg-type]

    def pull(self, prompt: int, n: int, rng: np.random.Generator, query: int | None = None) -> Pulls:
        q = None if query is None else np.array([query])
        return self.pull_many(np.array([prompt]), n, rng, q)

    def pull_many(
        self, prompts: np.ndarray, n: int, rng: np.random.Generator, queries: np.ndarray | None = None
    ) -> Pulls:
        prompts = np.asarray(prompts, dtype=np.int64)
        if queries is None:
            queries = rng.integers(0, self.n_queries or 1, size=prompts.size)
        queries = np.asarray(queries, dtype=np.int64)
        cdf = self._cdf[prompts, queries]  # (M, C)
        u = rng.random((prompts.size, n))
        samples = (u[:, :, None] >= cdf[:, None, :]).sum(axis=2)
        return Pulls(prompts, queries, np.minimum(samples, self.n_categories - 1))

    def answer_counts(self, pulls: Pulls) -> np.ndarray:
        """Answer counts (M, categories) of each pull."""
        return (pulls.samples[:, :, None] == np.arange(self.n_categories)).sum(axis=1)

    def pooled_stats(self) -> PooledStats:
        """Empty pooled (plug-in) statistics for this table (``reuse="pooled"``)."""
        from proxy.train.pooled import PooledStats

        return PooledStats(self.train_answers, self.n_categories, self.cost_per_prompt,
                           self._lams, self.n_max)

    def observe(self, pulls: Pulls, kmax: int, reuse: Reuse) -> Observation:
        correct = self.train_answers[pulls.queries]
        m = pulls.prompts.size
        if reuse == "subsets":
            counts = self.answer_counts(pulls)
            credit = subset_majority(counts, correct, kmax)
            cr_sum, cr_sq, count = credit, credit * credit, np.ones((m, kmax))
        elif reuse == "blocks":
            cr_sum, cr_sq, count = block_majority(pulls.samples, correct, kmax, self.n_categories)
        else:
            raise ValueError(f"unknown reuse estimator {reuse!r}")
        ks = np.arange(1, kmax + 1)
        cost = count * ks * self.cost_per_prompt[pulls.prompts][:, None]  # summed over observations
        lam = self._lams[:, None, None]
        util = cr_sum[None] - lam * cost[None]
        # sum of (credit_b - lam*k*cost)^2 over observations b
        per_obs_cost = ks * self.cost_per_prompt[pulls.prompts][:, None]
        util_sq = cr_sq[None] - 2 * lam * per_obs_cost[None] * cr_sum[None] + (lam * per_obs_cost[None]) ** 2 * count[None]
        objectives = np.broadcast_to(cr_sum[None, :, :, None], (len(self.contexts), m, kmax, 1))
        return Observation(util, util_sq, objectives, cost, count)


def _majority_exact(env: ReplayMajorityEnv) -> object:
    from proxy.train.evaluate import ExactTables, majority_credit_table

    lam_cost = env._lams[:, None, None] * np.arange(1, env.n_max + 1) * env.cost_per_prompt[None, :, None]
    out = []
    for probs, answers in ((env.train_probs, env.train_answers), (env.test_probs, env.test_answers)):
        credit = majority_credit_table(probs, answers, env.n_max).mean(axis=1)
        out.append(credit[None] - lam_cost)
    return ExactTables(out[0], out[1])


ReplayMajorityEnv.exact_utilities = _majority_exact  # type: ignore[attr-defined]
