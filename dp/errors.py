"""The one error of the ``dp`` library (a leaf: the application translates it at its boundary)."""

from __future__ import annotations


class DPError(Exception):
    """A differential-privacy request cannot be met safely (bad parameters, budget exceeded).

    ``code`` is a stable string: ``invalid_budget``, ``budget_exceeded``, ``invalid_bounds``,
    ``invalid_parameter``, ``library_error``.
    """

    def __init__(self, message: str, *, code: str = "invalid_parameter") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
