"""Release: what a job wants to take out, checked and re-serialised, then the stewards' decision.

    gated, rejected = gate_outputs(sandbox_result.outputs)   # CSV/JSON re-written, formulas neutralised
    wh.exports.decide(steward, export_id, "approve", reason, bundle_sha256)
    wh.exports.download(enterprise, export_id)

    verify_bundle(folder, public_key_pem)            # a downloaded export's signed provenance, offline

Modules: :mod:`.outputs` (file checks; safetensors for weights), :mod:`.exports` (bundles,
approvals bound to the bundle hash — by senior stewards for important data — and downloads),
:mod:`.attest` (the provenance statement, gathered and signed in the approval's transaction),
:mod:`.provenance` (in-toto statement, DSSE signature and the offline check: standard library and
``cryptography`` only). Errors: ``Forbidden``, ``NotFound``, ``InvalidInput``,
``InvalidTransition``, ``Tampered``.

May import: context, auth, audit, catalog, the :mod:`dp` library (weight
checks) and :mod:`policies` (grades).
"""

__all__ = ["attest", "exports", "outputs", "provenance"]
