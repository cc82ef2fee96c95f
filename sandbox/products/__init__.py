"""Models and verification as products (measures 十三 and 十七): a feature library, a model catalog,
inference and verification about subjects who authorised the tenant, and the subject's own view.

    wh.products.features.publish(steward, {"name": "avg_vat", "kind": "numeric", "sql": "SELECT … GROUP BY t.uscc"})
    wh.products.models.propose(analyst, export_id, name="default_risk", tenants=["bank_a"], purposes=["credit_decision"])
    wh.products.inference.score(analyst, "default_risk@1", subjects, "credit_decision")   # or submit_batch
    wh.products.verification.verify(analyst, "vat_2023_at_least@1", subject, "credit_decision", claim=500000)
    wh.products.activity.of(subject_user, subject)

The one new thing that leaves (the guarantee's third kind): per-subject results — a score, reason
codes, a verification answer — of a platform-run catalog model or verification product, only about
subjects whose authorisation (``sandbox.access.authorisations``) covers the tenant and purpose,
never the features behind them; each subject asked about is audited in the same transaction.

Modules, one per concept: :mod:`.features` (the library), :mod:`.models` (the catalog),
:mod:`.runtime` (features for subjects; the model's forward pass), :mod:`.uses` (quotas, the
distinct-claims limit, the per-subject rows bound to the audit), :mod:`.inference`,
:mod:`.verification`, :mod:`.activity` (the subject's view), :mod:`.service` (the wing's face for
the facade). Errors: ``NotFound`` (not in the catalog), ``AccessRefused``, ``Refused``
(``subject_results``), ``QuotaExceeded``, ``InvalidInput``, ``Conflict``, ``Forbidden``.

May import: jobs (the job view of a batch), training (the feature planner and composition), access
(authorisations), release, gate, context and below; never the facade or the interfaces.
"""

__all__ = ["activity", "features", "inference", "models", "runtime", "service", "uses", "verification"]
