"""Typed errors of the offline trainer.

    TrainError
     ├── TableError    a replay table is missing or malformed (names the offending array)
     ├── BudgetError   a budget is too small for the learner, or not a positive integer
     ├── ParamError    a learner spec or parameter is invalid (names the learner and parameter)
     ├── OutputError   an output file cannot be written (names the file and why)
     ├── TaskSetError  a live task set is missing, malformed (names file:line) or has no references
     └── LiveError     live training cannot go on: the upstream failed or is unreachable
          └── CostLimitError   the dollar limit (--max-cost-usd) was reached
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "CostLimitError",
    "LiveError",
    "OutputError",
    "ParamError",
    "TableError",
    "TaskSetError",
    "TrainError",
]


class TrainError(Exception):
    """Base class of every error raised by :mod:`proxy.train`."""


class TableError(TrainError):
    """A replay table cannot be used; the message names the array and what is wrong."""


class BudgetError(TrainError):
    """A sample budget that a learner cannot honour."""


class ParamError(TrainError, ValueError):
    """A learner spec or parameter cannot be used, e.g. ``psst-k: k must be an integer >= 1``.
    Also a :class:`ValueError`, which :func:`proxy.train.registry.make_learner` raised before."""


class OutputError(TrainError):
    """An output file (``--json``, ``--plot``, ``--out``) cannot be written there."""


class TaskSetError(TrainError):
    """A task set for live training cannot be used; the message names the file (and line)."""


class LiveError(TrainError):
    """Live training stopped: the upstream failed for good (after retries) or is unreachable."""


class CostLimitError(LiveError):
    """The run's dollar limit was reached; nothing is written, drawn samples stay cached."""
