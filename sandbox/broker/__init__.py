"""The broker's side of a query: every query a job asks is answered here, once.

    answer = wh.queries.answer(principal, job_id, purpose, snapshots, sql)  # policy → plan → budget → run → gate → audit

:class:`.queries.Queries` is the choke point; :mod:`.budget` is the DP budget ledger it charges
(reserve before a query runs, never refund, never overspend). Errors: ``QueryRefused``,
``BudgetExhausted``, ``Forbidden``.

May import: the gate, context, auth, audit, catalog and tables wings, and the :mod:`policies` and
:mod:`dp` libraries. The sandbox side of the conversation is :mod:`sandbox.isolation.channel`.
"""

__all__ = ["budget", "queries"]
