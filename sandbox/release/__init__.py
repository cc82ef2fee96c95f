"""Release: what a job wants to take out, checked and re-serialised, then the stewards' decision.

    gated, rejected = gate_outputs(sandbox_result.outputs)   # CSV/JSON re-written, formulas neutralised
    wh.exports.decide(steward, export_id, "approve", reason, bundle_sha256)
    wh.exports.download(enterprise, export_id)

Modules: :mod:`.outputs` (file checks; safetensors for weights), :mod:`.exports` (bundles,
approvals bound to the bundle hash, downloads). Errors: ``Forbidden``, ``NotFound``,
``InvalidInput``, ``InvalidTransition``.

May import: context, auth, audit, catalog and the :mod:`dp` library (weight checks).
"""

__all__ = ["exports", "outputs"]
