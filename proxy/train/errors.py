"""Typed errors of the offline trainer.

    TrainError
     ├── TableError    a replay table is missing or malformed (names the offending array)
     └── BudgetError   a budget is too small for the learner, or not a positive integer
"""

from __future__ import annotations

__all__ = ["BudgetError", "TableError", "TrainError"]


class TrainError(Exception):
    """Base class of every error raised by :mod:`proxy.train`."""


class TableError(TrainError):
    """A replay table cannot be used; the message names the array and what is wrong."""


class BudgetError(TrainError):
    """A sample budget that a learner cannot honour."""
