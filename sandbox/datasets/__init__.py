"""What a dataset is: its manifest, the catalog service that registers and describes it, and the
data anyone may have instead of its rows (mock rows from the manifest; DP synthetic rows).

    manifest = load_manifest("tax_payments.yaml")        # schema, roles, policy, contract, source
    wh.datasets.register(steward, manifest)              # Datasets (.service)
    mock_table(manifest, rows=1000)                      # same schema, no real value

Modules: :mod:`.manifest`, :mod:`.sources` (its ``source:``/``load:`` blocks), :mod:`.declared`
(column specs and the data contract as connectors values), :mod:`.service`, :mod:`.mock`,
:mod:`.synthetic`, :mod:`.summary` (what a listing shows, also read without SQLAlchemy).
Errors: ``ManifestInvalid``, ``Conflict``, ``Forbidden``, ``BudgetExhausted``.

May import: the context, auth, audit, catalog and tables wings, the gate's snapshot reader and the
broker's budget ledger (synthetic data spends ε); never landing, jobs or the interfaces.
"""

__all__ = ["declared", "manifest", "mock", "service", "sources", "summary", "synthetic"]
