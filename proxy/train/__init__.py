"""Offline PSST trainer on replay tables: environments, reuse estimators, learners, exact
evaluation and the ``iapo bench`` benchmark.

Public API::

    from proxy.train import ReplayMajorityEnv, make_learner, exact_tables, score_actions
    env = ReplayMajorityEnv.from_npz("math_mv.npz")
    learner = make_learner("psst", seed=0).fit(env, 20_000)
    learner.actions_          # (contexts, 2): prompt index, N
    learner.estimates_        # ArmTable: utility, objectives, cost, n_obs, CI per arm
"""

from proxy.train.base import Learner
from proxy.train.bon import BON_CONTEXTS, ReplayBestOfNEnv, make_synthetic_bon
from proxy.train.env import MATH_CONTEXTS, Context, Env, Observation, Pulls, ReplayMajorityEnv
from proxy.train.errors import BudgetError, ParamError, TableError, TrainError
from proxy.train.evaluate import ExactTables, Scores, exact_tables, score_actions
from proxy.train.registry import LEARNERS, make_learner
from proxy.train.stats import ArmStats, ArmTable

__all__ = [
    "BON_CONTEXTS",
    "LEARNERS",
    "MATH_CONTEXTS",
    "ArmStats",
    "ArmTable",
    "BudgetError",
    "Context",
    "Env",
    "ExactTables",
    "Learner",
    "Observation",
    "ParamError",
    "Pulls",
    "ReplayBestOfNEnv",
    "ReplayMajorityEnv",
    "Scores",
    "TableError",
    "TrainError",
    "exact_tables",
    "make_learner",
    "make_synthetic_bon",
    "score_actions",
]
