"""A manifest's declarations as the connectors library's values: column specs and the data contract.

    specs = column_specs(manifest)      # [ColumnSpec(name, type, nullable), ...] for sources and Arrow
    contract = contract_of(manifest)    # the Great Expectations suite, or None without expectations

``contract_of`` raises :class:`connectors.ConfigError` for an expectation it cannot build; callers
translate it (``ManifestInvalid`` at registration, a quarantine at ingest).
"""

from __future__ import annotations

from connectors import Contract
from connectors.schema import ColumnSpec

from .manifest import DatasetManifest


def column_specs(manifest: DatasetManifest) -> list[ColumnSpec]:
    return [ColumnSpec(c.name, c.type, c.nullable) for c in manifest.columns]


def contract_of(manifest: DatasetManifest) -> Contract | None:
    """The dataset's Great Expectations suite, built once per ingest (not per batch)."""
    if not manifest.expectations:
        return None
    return Contract([e.model_dump() for e in manifest.expectations], columns=[c.name for c in manifest.columns],
                    name=manifest.name)
