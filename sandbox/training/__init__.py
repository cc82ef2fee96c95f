"""The training job kind: features built by the broker, DP-SGD run by the platform, weights out only
when certified.

    Training(ctx).run(principal, job_id, spec, snapshots)   # -> gated weights, model card, review

Modules: :mod:`.spec` (the ``train:`` block of ``job.yaml``), :mod:`.features` (the trusted
feature query), :mod:`.library` (library features by name, checked and composed — shared with
inference), :mod:`.service` (trainer sandbox, certification, release). Errors:
``TrainingRefused``, ``QueryRefused``, ``JobSpecInvalid``.

May import: release, broker, gate, isolation, context, auth, tables and the :mod:`dp` library;
never jobs (the job spec it reads is handed to it).
"""

__all__ = ["features", "library", "service", "spec"]
