"""Exact combinatorial kernels: majority-vote credit and Best-of-N order statistics.

Majority voting, tie rule: credit 1 for a unique correct plurality, 0.5 for a tie at the top
that includes the correct answer, 0 otherwise. Write ``a`` for the correct category and
``G_t(m)`` for the number (or weight) of ways to fill ``m`` wrong-answer slots with every wrong
category used at most ``t`` times. Then, with ``j`` correct answers among ``k``::

    credit_k = s_k * sum_{j=1..k} a_j * (G_{j-1}(k-j) + G_j(k-j)) / 2

``G_{j-1}`` counts the unique pluralities, ``G_j - G_{j-1}`` the ties (credited one half).

* random ``k``-subset of ``N`` observed answers with counts ``n_c`` (hypergeometric, unbiased
  for the ``k``-vote of the same prompt and query): ``a_j = C(n_a, j)``,
  ``G_t = [x^m] prod_{c != a} sum_{i<=min(t, n_c)} C(n_c, i) x^i``, ``s_k = 1 / C(N, k)``;
* ``N`` i.i.d. draws with probabilities ``p_c`` (multinomial, the exact value):
  ``a_j = p_a^j / j!``, ``G_t = [x^m] prod_{c != a} sum_{i<=t} p_c^i / i! x^i``, ``s_N = N!``.

Best-of-N from ``N`` observed scores sorted ascending ``v_(1) <= ... <= v_(N)``:
``E[max of a random k-subset] = sum_i v_(i) C(i-1, k-1) / C(N, k)``.
"""

from __future__ import annotations

from math import comb, factorial

import numpy as np

__all__ = [
    "block_majority",
    "bon_subset_weights",
    "exact_majority",
    "subset_majority",
    "vote_credit",
]


def _capped_products(coef: np.ndarray) -> np.ndarray:
    """``G[m, t, d] = [x^d] prod_c sum_{i<=t} coef[m, c, i] x^i`` for t, d in 0..D-1."""
    rows, n_cat, size = coef.shape
    mask = np.tri(size, dtype=bool)  # mask[t, i] = i <= t
    out = np.zeros((rows, size, size))
    out[:, :, 0] = 1.0
    for c in range(n_cat):
        b = coef[:, c, None, :] * mask  # (rows, t, i)
        new = np.zeros_like(out)
        for i in range(size):
            bi = b[:, :, i : i + 1]
            if not bi.any():
                continue
            new[:, :, i:] += bi * out[:, :, : size - i]
        out = new
    return out


def _credit_from(a: np.ndarray, g: np.ndarray, kmax: int) -> np.ndarray:
    """``sum_j a_j (G_{j-1}(k-j) + G_j(k-j)) / 2`` for k = 1..kmax; shape (rows, kmax)."""
    ks, js = np.nonzero(np.tril(np.ones((kmax, kmax), dtype=bool)))
    ks, js = ks + 1, js + 1  # pairs 1 <= j <= k <= kmax
    h = 0.5 * (g[:, js - 1, ks - js] + g[:, js, ks - js])
    vals = a[:, js] * h
    out = np.zeros((a.shape[0], kmax))
    for k in range(1, kmax + 1):
        sel = ks == k
        out[:, k - 1] = vals[:, sel].sum(axis=1)
    return out


def _split(values: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, n_cat = values.shape
    hit = np.arange(n_cat)[None, :] == correct[:, None]
    right = values[hit]
    wrong = values[~hit].reshape(rows, n_cat - 1)
    return right, wrong


def subset_majority(counts: np.ndarray, correct: np.ndarray, kmax: int) -> np.ndarray:
    """Expected credit of the vote of a uniformly random k-subset of the observed answers.

    ``counts`` (rows, C) answer counts summing to the same N per row; returns (rows, kmax),
    k = 1..kmax <= N. Exact (hypergeometric), hence unbiased for the k-vote.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts[0].sum()) if counts.size else 0
    if kmax > n:
        raise ValueError(f"kmax={kmax} exceeds the {n} observed answers")
    right, wrong = _split(counts, np.asarray(correct))
    size = kmax + 1
    binom = np.array([[comb(c, i) for i in range(size)] for c in range(n + 1)], dtype=float)
    a = binom[right]  # (rows, size)
    g = _capped_products(binom[wrong])
    scale = np.array([1.0 / comb(n, k) for k in range(1, kmax + 1)])
    return _credit_from(a, g, kmax) * scale


def exact_majority(probs: np.ndarray, correct: np.ndarray, n_max: int) -> np.ndarray:
    """Exact expected credit of the vote of N i.i.d. draws, for N = 1..n_max; (rows, n_max)."""
    probs = np.asarray(probs, dtype=float)
    right, wrong = _split(probs, np.asarray(correct))
    size = n_max + 1
    inv_fact = np.array([1.0 / factorial(i) for i in range(size)])
    powers = np.arange(size)
    a = right[:, None] ** powers * inv_fact
    g = _capped_products(wrong[:, :, None] ** powers * inv_fact)
    scale = np.array([float(factorial(k)) for k in range(1, n_max + 1)])
    return np.clip(_credit_from(a, g, n_max) * scale, 0.0, 1.0)


def vote_credit(counts: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Credit of one vote from its answer counts (..., C) and the correct index (...)."""
    top = counts.max(axis=-1)
    n_top = (counts == top[..., None]).sum(axis=-1)
    mine = np.take_along_axis(counts, correct[..., None], axis=-1)[..., 0]
    return np.where(mine == top, np.where(n_top == 1, 1.0, 0.5), 0.0)


def block_majority(
    answers: np.ndarray, correct: np.ndarray, kmax: int, n_categories: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's disjoint blocks: for each k cut the N answers into floor(N/k) blocks.

    Returns per row and k: the sum of block credits, the sum of squared credits and the number
    of blocks, each (rows, kmax).
    """
    rows, n = answers.shape
    onehot = answers[:, :, None] == np.arange(n_categories)
    sums = np.zeros((rows, kmax))
    squares = np.zeros((rows, kmax))
    blocks = np.zeros(kmax)
    for k in range(1, kmax + 1):
        b = n // k
        cnt = onehot[:, : b * k].reshape(rows, b, k, n_categories).sum(axis=2)
        cr = vote_credit(cnt, np.repeat(correct[:, None], b, axis=1))
        sums[:, k - 1] = cr.sum(axis=1)
        squares[:, k - 1] = (cr * cr).sum(axis=1)
        blocks[k - 1] = b
    return sums, squares, np.broadcast_to(blocks, (rows, kmax)).copy()


def bon_subset_weights(n: int, kmax: int) -> np.ndarray:
    """W[i, k-1] = C(i, k-1) / C(n, k) (0-based ascending rank i): E[max of k-subset] = v @ W."""
    w = np.zeros((n, kmax))
    for k in range(1, kmax + 1):
        total = comb(n, k)
        for i in range(n):
            w[i, k - 1] = comb(i, k - 1) / total
    return w
